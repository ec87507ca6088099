"""Every periodic purge of ns, the SFS and the MC is a job that one worker of several runs: each is
registered under a name in ``LEADER_ONLY``, which the other workers drop at start. A purge added under
another name would run in every worker (they would only race to delete the same rows, but N times the
work), so this looks at what each component really builds."""

from pathlib import Path

import pytest

from authserver.config import load_config
from authserver.purge import PeriodicPurge
from authserver.services import mc as mc_service
from authserver.services import ns as ns_service
from authserver.services import sfs as sfs_service
from authserver.services.runtime import LEADER_ONLY
from tests.fixtures.system import free_port

BUILDERS = {"ns": ns_service.build, "sfs": sfs_service.build, "mc": mc_service.build}


@pytest.mark.parametrize("component", sorted(BUILDERS))
def test_every_purge_is_a_job_of_one_worker(component: str, tmp_path: Path) -> None:
    env = {"NEXTAUTH_DATA_DIR": str(tmp_path), "NEXTAUTH_MC_GRPC_LISTEN": f"127.0.0.1:{free_port()}"}
    built = BUILDERS[component](load_config(component, env), environ=env)
    try:
        purges = {name for name, job in built.listeners.items() if isinstance(job, PeriodicPurge)}
        assert purges, built.listeners  # each of them purges something
        assert purges <= set(LEADER_ONLY), purges - set(LEADER_ONLY)
    finally:
        grpc_server = built.listeners.get("grpc")
        if grpc_server is not None:  # bound at build
            grpc_server.server.stop(None)  # type: ignore[attr-defined]
        built.kv.close()
        built.engine.dispose()
