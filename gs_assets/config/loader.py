"""Load the user's config folder once, check it against the data model, fail with file and key."""

from __future__ import annotations

import re
from datetime import date, datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pydantic import ValidationError, create_model

from gs_assets.validators.errors import ConfigError, format_pydantic_errors
from gs_assets.config.system_defaults import default_job_dicts
from gs_assets.validators.expressions import ExpressionError, bind_errors, check_expression
from gs_assets.config.jobs import JOB_NAME, VIRTUAL_COLUMNS, BulkApiSettings, Chain, Connection, DeletePolicy, Job, Notification, Operation, PlatformFile
from gs_assets.config.jobs import CONNECTION_MODELS, SOURCE_MODELS, described_models, job_model_with_source
from gs_assets.config.jobs import known_connection_types
from gs_assets.config.jobs import platform_file_model
from gs_assets.config.jobs import webhook_url_problem
from gs_assets.model.field_types import MULTI_SELECT_SEPARATOR, FieldType
from gs_assets.model.objects import DataModel, load_data_model, read_yaml_mapping
from gs_assets.settings import Settings

DEFAULT_CONFIG_DIR = Settings().config_dir
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def config_dir() -> Path:
    return Settings.from_env().config_dir


@dataclass
class PlatformConfig:
    model: DataModel
    connections: dict[str, Connection] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    job_files: dict[str, str] = field(default_factory=dict)
    chains: dict[str, Chain] = field(default_factory=dict)
    chain_files: dict[str, str] = field(default_factory=dict)
    notifications: dict[str, Notification] = field(default_factory=dict)
    bulk_api: BulkApiSettings = field(default_factory=BulkApiSettings)

    def chain_of(self, job_name: str) -> Optional[Chain]:
        return next((c for c in self.chains.values() if job_name in c.jobs), None)

    def jobs_into(self, object_name: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.destination == object_name]

    def loads_on_arrival(self, job: Job) -> bool:
        """A job loads files as they arrive (sensor, lookup retries, any run of its object) unless it
        has a schedule or is in a chain: then it applies files at its own time (its schedule, its
        chain, or a run of that job by name)."""
        return job.schedule is None and self.chain_of(job.name) is None


def _check_job(job: Job, model: DataModel, connections: dict[str, Connection], file: str) -> None:
    key = f"jobs.{job.name}"
    if not JOB_NAME.match(job.name):
        raise ConfigError(file, key, "a job name is snake_case (a-z, 0-9, _)")
    if job.connection not in connections:
        raise ConfigError(file, f"{key}.connection",
                          f"unknown connection {job.connection!r}; known connections: {', '.join(sorted(connections)) or '(none)'}")
    _resolve_source(job, connections, file, f"{key}.source")
    problem = job.source.job_problem(job)  # what the source's kind says about the rest of the job
    if problem is not None:
        raise ConfigError(file, f"{key}.{problem[0]}", problem[1])
    dest = model.get(job.destination, file=file, key=f"{key}.destination")

    def field_of(obj, name: str, k: str):
        if name not in obj.fields or (obj.fields[name].system and name != "gsid"):
            raise ConfigError(file, k, f"unknown field {name!r} on object {obj.name!r}; known fields: "
                              f"{', '.join(f for f in obj.fields if not obj.fields[f].system)}")
        return obj.fields[name]

    _check_prepare(job, file, key)
    targets: set[str] = set()
    for i, m in enumerate(job.mappings):
        if m.source is not None and m.source.startswith("$"):
            if m.source not in VIRTUAL_COLUMNS:
                raise ConfigError(file, f"{key}.mappings[{i}].source",
                                  f"unknown file value {m.source!r}; allowed: {', '.join(VIRTUAL_COLUMNS)}")
        k = f"{key}.mappings[{i}].target"
        fd = field_of(dest, m.target, k)
        if m.target in targets:
            raise ConfigError(file, k, f"field {m.target!r} is mapped twice")
        if m.target == "gsid" and m.source is None:
            raise ConfigError(file, k, "gsid can only be mapped from a source column (to update by GSID)")
        if fd.type in (FieldType.DROPDOWN,) and m.constant is not None and str(m.constant) not in fd.values:
            raise ConfigError(file, f"{key}.mappings[{i}].constant",
                              f"{m.constant!r} is not a value of dropdown {m.target!r}; allowed: {', '.join(fd.values)}")
        targets.add(m.target)
    for i, lk in enumerate(job.lookups):
        k = f"{key}.lookups[{i}]"
        fd = field_of(dest, lk.target, f"{k}.target")
        if fd.type != FieldType.GSID:
            raise ConfigError(file, f"{k}.target", f"field {lk.target!r} is {fd.type.value}, a lookup writes a GSID into a gsid field")
        target_obj = model.get(lk.object, file=file, key=f"{k}.object")
        if fd.lookup != lk.object:
            raise ConfigError(file, f"{k}.object", f"field {lk.target!r} points at {fd.lookup!r}, not {lk.object!r}")
        for j, mf in enumerate(lk.match):
            field_of(target_obj, mf.field, f"{k}.match[{j}].field")
            if lk.object == job.destination and mf.field not in targets:
                raise ConfigError(file, f"{k}.match[{j}].field",
                                  f"a self lookup matches on fields this job maps; map {mf.field!r} too")
        if lk.target in targets:
            raise ConfigError(file, f"{k}.target", f"field {lk.target!r} is both mapped and looked up")
        targets.add(lk.target)
    if job.operation in (Operation.UPDATE, Operation.UPSERT) and not job.identifiers:
        raise ConfigError(file, f"{key}.identifiers", f"{job.operation.value} needs at least one identifier field")
    for i, ident in enumerate(job.identifiers):
        field_of(dest, ident, f"{key}.identifiers[{i}]")
        if ident not in targets:
            raise ConfigError(file, f"{key}.identifiers[{i}]", f"identifier {ident!r} is not mapped or looked up by this job")
    if job.operation in (Operation.INSERT, Operation.UPSERT):
        for fname, fd in dest.fields.items():
            if fd.required and not fd.system and fname not in targets:
                raise ConfigError(file, f"{key}.mappings",
                                  f"required field {fname!r} of {dest.name!r} is not mapped; every inserted record needs it")
    _check_deletes(job, dest, file, key, field_of)
    # what the job's connection says about it (e.g. a stream its system lacks), once the job itself holds
    problem = connections[job.connection].job_problem(job)
    if problem is not None:
        raise ConfigError(file, f"{key}.{problem[0]}", problem[1])


_TRUTH_WORDS = ("true", "t", "yes", "y", "1", "false", "f", "no", "n", "0")  # as the engine converts booleans


def _mark_value_problem(fd, value) -> Optional[str]:
    """Why `value` cannot be stored in field `fd` (a delete policy's mark), or None."""
    text = str(value).lower() if isinstance(value, bool) else str(value).strip()
    if text == "":
        return "the value is empty; give the value a delete sets"
    t = fd.type
    if t == FieldType.DROPDOWN and text not in fd.values:
        return f"{value!r} is not a value of dropdown {fd.name!r}; allowed: {', '.join(fd.values)}"
    if t == FieldType.MULTI_SELECT:
        bad = [v.strip() for v in text.split(MULTI_SELECT_SEPARATOR) if v.strip() not in fd.values]
        if bad:
            return f"{', '.join(map(repr, bad))} not among the values of {fd.name!r}; allowed: {', '.join(fd.values)}"
    if t == FieldType.BOOLEAN and text.lower() not in _TRUTH_WORDS:
        return f"{value!r} is not a boolean; use true or false"
    if t.is_numeric:
        try:
            number = float(text)
        except ValueError:
            return f"{value!r} is not a {t.value}"
        if (fd.min is not None and number < fd.min) or (fd.max is not None and number > fd.max):
            return f"{value!r} is outside {fd.name!r}'s range ({fd.min} to {fd.max})"
    if t in (FieldType.DATE, FieldType.DATETIME):
        try:
            (date if t == FieldType.DATE else datetime).fromisoformat(text)
        except ValueError:
            return f"{value!r} is not a {t.value} in ISO 8601 (e.g. 2026-12-01)"
    if t == FieldType.EMAIL and "@" not in text:
        return f"{value!r} is not an email address"
    if fd.max_length is not None and len(text) > fd.max_length:
        return f"{value!r} is longer than {fd.name!r}'s {fd.max_length} characters"
    return None


def _check_deletes(job: Job, dest, file: str, key: str, field_of) -> None:
    """A delete policy that changes records (delete, mark) needs the records' match: identifiers the
    job maps from source columns (a delete row carries only the source's key columns); mark needs
    a field of the destination and a value it can hold."""
    d, k = job.deletes, f"{key}.deletes"
    if d.policy != DeletePolicy.MARK and (d.field is not None or d.value is not None):
        raise ConfigError(file, f"{k}.field" if d.field is not None else f"{k}.value",
                          f"only policy mark takes 'field' and 'value' (policy is {d.policy.value})")
    if d.policy == DeletePolicy.IGNORE:
        return
    if job.operation == Operation.INSERT:
        raise ConfigError(file, f"{k}.policy", f"operation insert cannot apply deletes (policy {d.policy.value}): it "
                          f"never matches stored records; use operation upsert or update with identifiers, or policy ignore")
    if not job.identifiers:
        raise ConfigError(file, f"{key}.identifiers", f"policy {d.policy.value} needs identifiers: the fields a "
                          f"reported delete is matched on")
    if job.prepare.aggregate is not None:
        raise ConfigError(file, f"{k}.policy", f"policy {d.policy.value} cannot follow an aggregation (a group's "
                          f"record is not one source record); use policy ignore")
    prepared = set(job.derived_names) | set(job.merged_names)
    by_target = {m.target: m for m in job.mappings}
    for i, ident in enumerate(job.identifiers):
        m = by_target.get(ident)
        if m is None or m.source is None or m.source in prepared:
            how = ("a lookup" if m is None else "a constant or default" if m.source is None
                   else f"the prepared column {m.source!r}")
            raise ConfigError(file, f"{key}.identifiers[{i}]", f"policy {d.policy.value} matches a reported delete on "
                              f"the identifiers as mapped from the source's columns; {ident!r} comes from {how}. Map "
                              f"it from a source column, or use policy ignore")
    if d.policy == DeletePolicy.MARK:
        if d.field is None:
            raise ConfigError(file, f"{k}.field", "policy mark needs 'field': the field of "
                              f"{dest.name!r} a reported delete sets (e.g. field: status, value: Inactive)")
        fd = field_of(dest, d.field, f"{k}.field")
        if fd.type == FieldType.GSID or d.field in job.identifiers:
            raise ConfigError(file, f"{k}.field", f"policy mark cannot set {d.field!r}: it is "
                              + ("a lookup (GSID)" if fd.type == FieldType.GSID else "an identifier the delete matches on"))
        if d.value is None:
            raise ConfigError(file, f"{k}.value", f"policy mark needs 'value': what {d.field!r} is set to")
        problem = _mark_value_problem(fd, d.value)
        if problem:
            raise ConfigError(file, f"{k}.value", problem)


def _resolve_source(job: Job, connections: dict[str, Connection], file: str, key: str) -> None:
    """Validate the job's source against the source model of its connection's kind (registered by
    the kind), replacing the source as read by an instance of that model."""
    conn_type = connections[job.connection].type
    model = SOURCE_MODELS.get(conn_type)
    if model is None:
        takes = sorted(SOURCE_MODELS)
        raise ConfigError(file, key, f"connections of type {conn_type!r} (connection {job.connection!r}) take no job "
                          f"sources; jobs read connections of type {', '.join(takes) or '(none registered)'}")
    if isinstance(job.source, model):
        return
    try:  # (a source read before its connection's type was known)
        job.source = model.model_validate(job.source.model_dump())
    except ValidationError as e:
        raise format_pydantic_errors(file, key, e, model) from e


def _check_connection_types(raw, file: str) -> None:
    """Every connection names a registered type (a connector kind), else one message with the key
    and the known types."""
    conns = raw.get("connections") if isinstance(raw, dict) else None
    for name, conn in (conns.items() if isinstance(conns, dict) else ()):
        t = conn.get("type") if isinstance(conn, dict) else None
        if t is not None and t not in CONNECTION_MODELS:
            raise ConfigError(file, f"connections.{name}.type",
                              f"unknown connection type {t!r}; known types: {known_connection_types()}")


def _described_file(raw, types: dict[str, str], described_file, described_job):
    """The file model an error message reads allowed keys from: each job's source as the source
    model of its connection's kind (when the job names a known connection)."""
    jobs = raw.get("jobs") if isinstance(raw, dict) else None
    if not isinstance(jobs, dict):
        return described_file
    fields = {}
    for name, job in jobs.items():
        model = SOURCE_MODELS.get(types.get(job.get("connection"))) if isinstance(job, dict) else None
        fields[str(name)] = (job_model_with_source(model) if model is not None else described_job, None)
    if not any(m is not described_job for m, _ in fields.values()):
        return described_file
    try:
        jobs_model = create_model("Jobs", **fields)
        return create_model("PlatformFile", __base__=described_file, jobs=(jobs_model, None))
    except Exception:  # noqa: BLE001 - a job name pydantic cannot take as a field: the general model
        return described_file


def _check_prepare(job: Job, file: str, key: str) -> None:
    """Formulas parse as pure expressions and type-check against the (text) source columns."""
    derived: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, d in enumerate(job.prepare.derived):
        k = f"{key}.prepare.derived[{i}]"
        if not d.name.strip() or d.name.startswith(("$", "_")):
            raise ConfigError(file, f"{k}.name", "a derived field needs a name that does not start with '$' or '_'")
        if d.name.lower() in seen:
            raise ConfigError(file, f"{k}.name", f"derived field {d.name!r} is defined twice")
        seen.add(d.name.lower())
        try:
            check_expression(d.expression)
        except ExpressionError as e:
            raise ConfigError(file, f"{k}.expression", str(e)) from None
        derived.append((d.name, d.expression))
    if job.prepare.filter is not None:
        try:
            check_expression(job.prepare.filter)
        except ExpressionError as e:
            raise ConfigError(file, f"{key}.prepare.filter", str(e)) from None
    fulls = [i for i, mg in enumerate(job.prepare.merge) if mg.how == "full"]
    if len(fulls) > 1:
        raise ConfigError(file, f"{key}.prepare.merge[{fulls[1]}].how", "a job may have one full merge (the others left or inner)")
    for i, mg in enumerate(job.prepare.merge):
        if mg.dataset == job.source.object:
            raise ConfigError(file, f"{key}.prepare.merge[{i}].dataset", "a job cannot merge its own source with itself")
    agg = job.prepare.aggregate
    if agg is not None:
        out = set(agg.group_by) | {m.name for m in agg.measures}
        used = [(f"mappings[{i}].source", m.source) for i, m in enumerate(job.mappings)
                if m.source is not None and m.source not in VIRTUAL_COLUMNS]
        used += [(f"lookups[{i}].match[{j}].source", mf.source) for i, lk in enumerate(job.lookups)
                 for j, mf in enumerate(lk.match)]
        for k, col in used:
            if col not in out:
                raise ConfigError(file, f"{key}.{k}", f"after aggregation only the group_by columns and measures exist "
                                  f"({', '.join(sorted(out))}); {col!r} is neither")
    for where, message in bind_errors(derived, job.prepare.filter, job.mapped_source_columns + job.merged_names):
        raise ConfigError(file, f"{key}.prepare.{where}", message)


def _check_chain(chain: Chain, cfg: "PlatformConfig", file: str) -> None:
    """Members exist, appear once, belong to no other chain, and come after the jobs that load
    the objects they look up (loads run in chain order, so a lookup must find its records)."""
    key = f"chains.{chain.name}"
    if not JOB_NAME.match(chain.name):
        raise ConfigError(file, key, "a chain name is snake_case (a-z, 0-9, _)")
    for i, name in enumerate(chain.jobs):
        k = f"{key}.jobs[{i}]"
        if name not in cfg.jobs:
            raise ConfigError(file, k, f"unknown job {name!r}; known jobs: {', '.join(sorted(cfg.jobs)) or '(none)'}")
        if name in chain.jobs[:i]:
            raise ConfigError(file, k, f"job {name!r} is in this chain twice (a chain cannot loop)")
        other = cfg.chain_of(name)
        if other is not None:
            raise ConfigError(file, k, f"job {name!r} is already in chain {other.name!r}; a job belongs to one chain")
    # needs[a][b]: the object job a looks up (not its own) that job b loads, so b must run first.
    needs: dict[str, dict[str, str]] = {name: {} for name in chain.jobs}
    for name in chain.jobs:
        for lk in cfg.jobs[name].lookups:
            if lk.object != cfg.jobs[name].destination:
                for m in chain.jobs:
                    if m != name and cfg.jobs[m].destination == lk.object:
                        needs[name].setdefault(m, lk.object)
    cycle = _lookup_cycle(chain.jobs, needs)
    if cycle:
        why = "; ".join(f"{a} looks up {needs[a][b]!r}, which {b} loads" for a, b in zip(cycle, cycle[1:]))
        raise ConfigError(file, f"{key}.jobs",
                          f"the lookups of these jobs go round in a circle: {' -> '.join(cycle)} ({why}), so no order "
                          f"of this chain runs each job after the jobs it looks up. Take one of these lookups out of "
                          f"the chain (remove it from its job and fill that field with an update job that runs outside "
                          f"this chain, on its own or in another chain), or put these jobs in separate chains")
    for i, name in enumerate(chain.jobs):
        later = [m for m in chain.jobs[i + 1:] if m in needs[name]]
        if later:
            raise ConfigError(file, f"{key}.jobs[{i}]",
                              f"job {name!r} looks up {needs[name][later[0]]!r}, which job {later[0]!r} loads later in "
                              f"this chain; put {later[0]!r} before {name!r} (an order that works: "
                              f"jobs: [{', '.join(_order_that_works(chain.jobs, needs))}])")


def _lookup_cycle(jobs: list[str], needs: dict[str, dict[str, str]]) -> list[str]:
    """A cycle a -> b -> ... -> a of `needs` (a looks up what b loads), the first found in chain
    order, or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(a: str, path: list[str]) -> list[str]:
        state[a] = 1
        path.append(a)
        for b in needs[a]:
            if state.get(b) == 1:
                return path[path.index(b):] + [b]
            if b not in state:
                found = visit(b, path)
                if found:
                    return found
        path.pop()
        state[a] = 2
        return []

    for a in jobs:
        if a not in state:
            found = visit(a, [])
            if found:
                return found
    return []


def _order_that_works(jobs: list[str], needs: dict[str, dict[str, str]]) -> list[str]:
    """The chain's jobs with each after the jobs it looks up, otherwise as close to the given
    order as possible (there is no cycle)."""
    order: list[str] = []
    while len(order) < len(jobs):
        order.append(next(a for a in jobs if a not in order and all(b in order for b in needs[a])))
    return order


def _check_webhook(note: Notification, file: str) -> None:
    """A webhook URL is http(s) with a host and no whitespace; one in `url_env` is checked when the
    variable is set now (else at delivery). Messages name the key and the variable, never the URL."""
    key = f"notifications.{note.name}.webhook"
    hint = "give an http:// or https:// URL with a host and no spaces"
    if note.webhook.url is not None:
        problem = webhook_url_problem(note.webhook.url)
        if problem:
            raise ConfigError(file, f"{key}.url", f"the webhook URL is not usable: {problem}; {hint} "
                              f"(a URL that carries a token belongs in an env var named by url_env)")
        return
    var = note.webhook.url_env
    if not var or not ENV_VAR.match(var):
        raise ConfigError(file, f"{key}.url_env", "url_env is the name of an environment variable (letters, digits, _)")
    secret = Settings.from_env().named_secret(var)
    value = secret.get_secret_value() if secret else None
    problem = webhook_url_problem(value) if value else None
    if problem:
        raise ConfigError(file, f"{key}.url_env", f"env var {var} does not hold a usable webhook URL: {problem}; "
                          f"set {var} to an http:// or https:// URL with a host and no spaces (its value is not shown)")


def load_platform_config(directory: Optional[Path] = None) -> PlatformConfig:
    """Read config/objects.yaml and every YAML file under config/ that holds connections or jobs."""
    directory = Path(directory) if directory else config_dir()
    if not directory.is_dir():
        raise ConfigError(str(directory), "(folder)", "config folder not found; set GSDP_CONFIG_DIR or create it")
    model = load_data_model(directory / "objects.yaml")
    cfg = PlatformConfig(model=model)
    files = sorted(p for p in directory.rglob("*.y*ml") if p.name != "objects.yaml" and p.suffix in (".yaml", ".yml"))
    parsed: list[tuple[str, PlatformFile]] = []
    file_model = platform_file_model()
    described_file, described_job = described_models()  # for the keys an error message lists
    raws = [(p, read_yaml_mapping(p)) for p in files]
    # Each job's source is validated against the source model of its connection's kind: the
    # types of every file's connections (a job may read a connection defined in another file).
    types: dict[str, str] = {}
    for p, raw in raws:
        _check_connection_types(raw, str(p))
        conns = raw.get("connections") if isinstance(raw, dict) else None
        for name, conn in (conns.items() if isinstance(conns, dict) else ()):
            if isinstance(conn, dict) and isinstance(conn.get("type"), str):
                types.setdefault(str(name), conn["type"])
    context = {"connection_types": types}
    for p, raw in raws:
        try:
            pf = file_model.model_validate(raw, context=context)
        except ValidationError as e:
            raise format_pydantic_errors(str(p), "", e, _described_file(raw, types, described_file, described_job)) from e
        for name, conn in pf.connections.items():
            if name in cfg.connections:
                raise ConfigError(str(p), f"connections.{name}", "a connection of this name is defined twice")
            cfg.connections[name] = conn
        parsed.append((str(p), pf))
    # Out-of-the-box jobs of connections to known systems (a job of the same name in `jobs:` replaces one).
    defaults: dict[str, tuple[str, str, dict]] = {}
    for file, pf in parsed:
        for conn_name, conn in pf.connections.items():
            if getattr(conn, "system", None):
                for name, (key, raw) in default_job_dicts(conn_name, conn, file).items():
                    defaults[name] = (file, key, raw)
    user_jobs = {name for _, pf in parsed for name in pf.jobs}
    for name, (file, key, raw) in sorted(defaults.items()):
        if name in user_jobs:
            continue
        try:
            job = Job.model_validate(raw, context=context)
        except ValidationError as e:
            raise format_pydantic_errors(file, key, e, described_job) from e
        job.name = name
        _resolve_source(job, cfg.connections, file, f"{key}.source")
        try:
            _check_job(job, model, cfg.connections, file)
        except ConfigError as e:  # say which default job, and where to change it
            raise ConfigError(file, key, f"(default job {name}) {e.key}: {e.message}") from None
        cfg.jobs[name] = job
        cfg.job_files[name] = file
    for file, pf in parsed:
        for name, job in pf.jobs.items():
            if name in cfg.jobs:
                raise ConfigError(file, f"jobs.{name}", f"a job of this name is already defined in {cfg.job_files[name]}")
            job.name = name
            _check_job(job, model, cfg.connections, file)
            cfg.jobs[name] = job
            cfg.job_files[name] = file
    for file, pf in parsed:
        for name, chain in pf.chains.items():
            if name in cfg.chains or name in cfg.jobs:
                raise ConfigError(file, f"chains.{name}", "a chain or job of this name is already defined; names are shared")
            chain.name = name
            _check_chain(chain, cfg, file)
            cfg.chains[name] = chain
            cfg.chain_files[name] = file
    bulk_files = [file for file, pf in parsed if pf.bulk_api is not None]
    if len(bulk_files) > 1:
        raise ConfigError(bulk_files[1], "bulk_api", f"the Bulk API is already configured in {bulk_files[0]}; keep one section")
    for file, pf in parsed:
        if pf.bulk_api is not None:
            cfg.bulk_api = pf.bulk_api
    for file, pf in parsed:
        for name, note in pf.notifications.items():
            if name in cfg.notifications:
                raise ConfigError(file, f"notifications.{name}", "a notification of this name is defined twice")
            note.name = name
            for i, j in enumerate(note.jobs):
                if j not in cfg.jobs and j not in cfg.chains:
                    raise ConfigError(file, f"notifications.{name}.jobs[{i}]",
                                      f"unknown job or chain {j!r}; known: {', '.join(sorted([*cfg.jobs, *cfg.chains]))}")
            if note.webhook is not None:
                _check_webhook(note, file)
            cfg.notifications[name] = note
    # A merged dataset is a source object of the same connection (some job lands its files).
    for job in cfg.jobs.values():
        datasets = sorted({j.source.object for j in cfg.jobs.values() if j.connection == job.connection})
        for i, mg in enumerate(job.prepare.merge):
            if mg.dataset not in datasets:
                raise ConfigError(cfg.job_files[job.name], f"jobs.{job.name}.prepare.merge[{i}].dataset",
                                  f"unknown dataset {mg.dataset!r} on connection {job.connection!r}; its datasets "
                                  f"(source objects of its jobs): {', '.join(datasets)}")
    # Two jobs that share a source object must read it the same way (one raw table, one asset).
    seen: dict[tuple, Job] = {}
    for job in cfg.jobs.values():
        k = tuple(job.source_asset_path)
        per_job = set(type(job.source).PER_JOB_SETTINGS)  # settings its kind lets jobs of one source differ in
        if k in seen and seen[k].source.model_dump(exclude=per_job) != job.source.model_dump(exclude=per_job):
            raise ConfigError(cfg.job_files[job.name], f"jobs.{job.name}.source",
                              f"source object {job.source.object!r} is also read by job {seen[k].name!r} with other settings; give it another name")
        seen.setdefault(k, job)
    return cfg
