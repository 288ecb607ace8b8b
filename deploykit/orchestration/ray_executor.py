"""``deploykit build --executor ray``: each job a Ray task, for fleets of models past one machine.

Ray is an optional extra (``pip install deploykit[ray]``) and imported only here. Each task runs the
same ``jobs.run_job`` the local executor runs, with one CPU, so a job's outputs (its folder under
``OUT/jobs``) are the same whichever executor ran it; the tasks write to the build's output folder,
which on a cluster must be shared storage (the build record says where each job ran). Without
``--ray-address`` a local Ray instance is started with ``workers`` CPUs and shut down afterwards.
"""

from __future__ import annotations

import logging

from deploykit.core.errors import UsageError


def execute_on_ray(config, todo, address: str | None, workers: int, progress):
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray", hint="pip install 'deploykit[ray]' (or ray>=2.58)") from None
    from deploykit.orchestration.jobs import run_job, spec_for

    started_here = not ray.is_initialized()
    if started_here:
        try:
            quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, **quiet)
        except Exception as exc:  # a wrong address or a cluster that is down: the user's to fix
            raise UsageError(f"cannot start or reach Ray{f' at {address}' if address else ''}: "
                             f"{str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_job)
        pending = {task.remote(spec_for(config, job)): job for job in todo}
        for job in todo:  # Ray schedules them as CPUs free up; the rows show them as submitted
            _started = getattr(progress, "job_started", None)
            if _started is not None:
                _started(job.id)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            record = {**ray.get(done[0]), "executor": "ray"}
            finished = getattr(progress, "job_finished", None)
            if finished is not None:
                finished(job.id, record["status"], record["seconds"])
            yield record
    finally:
        if started_here:
            ray.shutdown()
