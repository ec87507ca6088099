"""Every module that declares tables, imported together: the whole schema the migrations must produce.

The tables share one ``Base.metadata``; a module's tables join it when the module is imported. ``authserver``
cannot import the IdP's (``idp.models``), so whatever needs all of them (comparing the migrations with the
models, autogenerating a revision) imports this module first and uses ``METADATA``.
"""

from authserver.storage import admin_models, flow_models, models
from idp import models as idp_models

TABLE_MODULES = (models, flow_models, admin_models, idp_models)
METADATA = models.Base.metadata
