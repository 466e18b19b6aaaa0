"""Job chains: member jobs run one after another inside one Dagster run.

A chain is an ordered list of jobs (config `chains:`). Its run takes each member in turn: every
file its pick-up rule finds is landed (the member's source asset, one partition per file), then
the member's pending loads are applied to its destination object, then the files are archived.
The next member starts only after that commit, so a member that looks up another member's object
finds the records loaded just before it. A member whose file cannot be read or whose load fails
ends the chain (`on_failure: stop`, the default) or is reported while the rest go on
(`continue`); either way the run is marked failed, so failure notifications fire.

Each landed file and each applied object is recorded as an asset materialization of
`source/<connection>/<object>` (with the file as partition) and `gs/<object>`, so the asset
pages show what a chain loaded, as they do for sensor-driven runs.
"""

import dagster as dg

from gs_assets.connectors.kind import resources_of
from gs_assets.connectors.registry import kind_of_job
from gs_assets.engine.warehouse_setup import ensure_tables
from gs_assets.engine.lineage import lineage_metadata
from gs_assets.config.jobs import Chain, Job
from gs_assets.config.loader import PlatformConfig
from gs_assets.dagster_jobs import chain_job_name
from gs_assets.dynamic_partitions import add_partitions
from gs_assets.engine.pipeline import LoadError, apply_pending
from resources.warehouse import Warehouse


def _run_member(context, cfg: PlatformConfig, job: Job, warehouse: Warehouse) -> list[str]:
    """Land the member's units (through its connector kind) and apply its loads; returns what
    failed (empty: the member succeeded)."""
    problems: list[str] = []
    kind = kind_of_job(cfg, job)
    resources = resources_of(kind, context)
    keys = kind.discover(cfg, job, resources)
    partitions = kind.partitions_name(job.connection, job.source.object)
    if keys and partitions:  # dynamic partitions (files); None: the kind's partitions are fixed (time windows)
        add_partitions(context.instance, partitions, keys)
    for key in keys:
        meta = kind.land(context, cfg, warehouse, resources, job.connection, job.source.object, key)
        error = meta.pop("error", None)
        context.log_event(dg.AssetMaterialization(asset_key=dg.AssetKey(job.source_asset_path), partition=key,
                                                  metadata={**meta, "chain_member": job.name}))
        if error:
            problems.append(f"{key}: {error}")
    try:
        results = apply_pending(warehouse, cfg, job.destination, run_id=context.run.run_id, log=context.log,
                                only_jobs={job.name})
    except LoadError as e:
        problems.append(str(e))
        results = []
    finally:
        kind.after_commit(warehouse, cfg, resources, job.destination, context.log)
    problems += [f"{r.source_file}: {r.error}" for r in results if r.status == "Failed"]
    if results:
        context.log_event(dg.AssetMaterialization(
            asset_key=dg.AssetKey(["gs", job.destination]),
            metadata={"chain_member": job.name, "job_runs": len(results),
                      **{k: sum(getattr(r, k) for r in results)
                         for k in ("rows_read", "inserted", "updated", "unchanged", "rejected", "filtered", "superseded",
                                   "aggregated", "deleted", "deletes_applied", "defaulted")},
                      **lineage_metadata(cfg, job.destination)}))
    context.log.info(f"{job.name}: {len(keys)} file(s), {len(results)} load(s) applied"
                     + (f"; failed: {'; '.join(problems)}" if problems else ""))
    return problems


def build_chain_job(cfg: PlatformConfig, chain: Chain) -> dg.JobDefinition:
    # the resources of the members' connector kinds
    keys = set().union(*(kind_of_job(cfg, cfg.jobs[name]).resource_keys for name in chain.jobs))

    @dg.op(name=f"{chain.name}_members", pool="warehouse", required_resource_keys={"warehouse", *keys},
           description=f"Runs {', '.join(chain.jobs)} in order (on failure: {chain.on_failure})")
    def _members(context: dg.OpExecutionContext) -> None:
        warehouse: Warehouse = context.resources.warehouse
        ensure_tables(warehouse, cfg.model)
        failed: dict[str, list[str]] = {}
        for i, name in enumerate(chain.jobs):
            job = cfg.jobs[name]
            problems = _run_member(context, cfg, job, warehouse)
            if problems:
                failed[name] = problems
                if chain.on_failure == "stop":
                    skipped = chain.jobs[i + 1:]
                    if skipped:
                        context.log.warning(f"chain {chain.name} stops after {name} failed; not run: {', '.join(skipped)}")
                    break
        if failed:
            raise dg.Failure(
                description=f"chain {chain.name}: member(s) failed: " + "; ".join(
                    f"{n}: {' | '.join(p)[:500]}" for n, p in failed.items()),
                metadata={"failed_members": ", ".join(failed), "on_failure": chain.on_failure})

    @dg.job(name=chain_job_name(chain.name), tags={"gsdp/chain": chain.name},
            description=chain.description or f"Job chain: {' -> '.join(chain.jobs)}")
    def _chain():
        _members()

    return _chain
