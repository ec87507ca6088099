"""The ``nextauth`` command: composes ns, sfs, mc (``authserver``) and the IdP (``idp``).

It sits above both so that neither imports the other's entry points: ``idp`` builds on ``authserver``'s
storage and settings, and only this package knows that ``nextauth all`` runs them side by side.
Nothing is imported here: ``nextauth.cli`` must let gevent patch the standard library first.
"""
