"""Schedules of job chains: a chain's schedule runs its members in order (and replaces theirs)."""

import dagster as dg

from gs_assets.config.loader import PlatformConfig
from gs_assets.dagster_jobs import chain_job_name


def build_chain_schedules(cfg: PlatformConfig) -> list[dg.ScheduleDefinition]:
    out = []
    for chain in sorted(cfg.chains.values(), key=lambda c: c.name):
        if chain.schedule is None:
            continue  # on demand: launch its job from the UI or `gsdp run <chain>`
        out.append(dg.ScheduleDefinition(
            name=f"{chain.name}_chain_schedule", job_name=chain_job_name(chain.name),
            cron_schedule=chain.schedule.cron_expression(), execution_timezone=chain.schedule_timezone,
            description=f"{chain.schedule.describe()} ({chain.schedule_timezone}): {' -> '.join(chain.jobs)}"))
    return out
