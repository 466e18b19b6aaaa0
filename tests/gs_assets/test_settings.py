"""Settings: every environment variable read in one place (gs_assets/settings.py), with its default,
parsed and checked, secrets hidden; no other module reads the environment."""

import ast
from pathlib import Path

import pytest

from gs_assets.settings import ROOT, Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]

# Every variable README's Environment paragraph documents, with its default when unset.
DEFAULTS = {
    "GSDP_CONFIG_DIR": ("config_dir", REPO / "config"),
    "GSDP_WAREHOUSE": ("warehouse", str(REPO / "data" / "warehouse.duckdb")),
    "GSDP_WAREHOUSE_MEMORY_LIMIT": ("warehouse_memory_limit", "600MB"),
    "GSDP_S3_ENDPOINT_URL": ("s3_endpoint_url", None),
    "GSDP_SQS_ENDPOINT_URL": ("sqs_endpoint_url", None),
    "AWS_DEFAULT_REGION": ("aws_default_region", "us-east-1"),
    "AWS_ACCESS_KEY_ID": ("aws_access_key_id", None),
    "AWS_SECRET_ACCESS_KEY": ("aws_secret_access_key", None),
    "DAGSTER_HOME": ("dagster_home", None),
    "GSDP_PROGRESS_SECONDS": ("progress_seconds", 5.0),
    "GSDP_SENSOR_WAREHOUSE_WAIT_SECONDS": ("sensor_warehouse_wait_seconds", 40.0),
    "GSDP_SMTP_HOST": ("smtp_host", None),
    "GSDP_SMTP_PORT": ("smtp_port", 25),
    "GSDP_SMTP_USER": ("smtp_user", None),
    "GSDP_SMTP_PASSWORD": ("smtp_password", None),
    "GSDP_SMTP_STARTTLS": ("smtp_starttls", False),
    "GSDP_BULK_DB": ("bulk_db", REPO / "data" / "bulk_api.sqlite"),
    "GSDP_REST_HOST_MAP": ("rest_host_map", None),
    "GSDP_REST_TOKEN_DIR": ("rest_token_dir", REPO / "data" / "tokens"),
    "GSDP_REST_MAX_RETRY_WAIT_SECONDS": ("rest_max_retry_wait_seconds", None),
    "GSDP_BULK_HOST": ("bulk_host", "127.0.0.1"),
    "GSDP_BULK_PORT": ("bulk_port", 8080),
    "GSDP_BULK_STATUS_GRACE_SECONDS": ("bulk_status_grace_seconds", 60.0),
    "GSDP_UI_PORT": ("ui_port", 3000),
    "GSDP_DEMO_S3_PORT": ("demo_s3_port", None),
}

# A value per variable and what it becomes.
PARSED = {
    "GSDP_CONFIG_DIR": ("/etc/gsdp", Path("/etc/gsdp")),
    "GSDP_WAREHOUSE": ("/var/wh.duckdb", "/var/wh.duckdb"),
    "GSDP_WAREHOUSE_MEMORY_LIMIT": ("1.5GiB", "1.5GiB"),
    "GSDP_S3_ENDPOINT_URL": ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    "GSDP_SQS_ENDPOINT_URL": ("https://sqs.example.com", "https://sqs.example.com"),
    "AWS_DEFAULT_REGION": ("eu-west-1", "eu-west-1"),
    "DAGSTER_HOME": ("/srv/dagster", "/srv/dagster"),
    "GSDP_PROGRESS_SECONDS": ("0.5", 0.5),
    "GSDP_SENSOR_WAREHOUSE_WAIT_SECONDS": ("0", 0.0),
    "GSDP_SMTP_HOST": ("mail.example.com", "mail.example.com"),
    "GSDP_SMTP_PORT": ("587", 587),
    "GSDP_SMTP_USER": ("gsdp", "gsdp"),
    "GSDP_SMTP_STARTTLS": ("1", True),
    "GSDP_BULK_DB": ("/srv/bulk.sqlite", Path("/srv/bulk.sqlite")),
    "GSDP_REST_HOST_MAP": ("login.salesforce.com=http://127.0.0.1:8700", "login.salesforce.com=http://127.0.0.1:8700"),
    "GSDP_REST_TOKEN_DIR": ("/srv/tokens", Path("/srv/tokens")),
    "GSDP_REST_MAX_RETRY_WAIT_SECONDS": ("0", 0.0),
    "GSDP_BULK_HOST": ("0.0.0.0", "0.0.0.0"),
    "GSDP_BULK_PORT": ("9090", 9090),
    "GSDP_BULK_STATUS_GRACE_SECONDS": ("12.5", 12.5),
    "GSDP_UI_PORT": ("3001", 3001),
    "GSDP_DEMO_S3_PORT": ("9556", 9556),
}
SECRETS = {"AWS_ACCESS_KEY_ID": "AKIA-SECRET-ID", "AWS_SECRET_ACCESS_KEY": "aws-SECRET-key",
           "GSDP_SMTP_PASSWORD": "pw-SECRET-smtp"}


def test_every_variable_has_its_documented_default():
    s = Settings.from_env({})
    assert ROOT == REPO
    assert {f.metadata["env"] for f in Settings.variables()} == set(DEFAULTS)
    for var, (name, default) in DEFAULTS.items():
        assert getattr(s, name) == default, var
    assert Settings.from_env({var: "" for var in DEFAULTS}) == s  # empty = unset


def test_the_default_memory_limit_is_the_warehouses():
    from resources.warehouse import DEFAULT_MEMORY_LIMIT
    assert Settings().warehouse_memory_limit == DEFAULT_MEMORY_LIMIT


@pytest.mark.parametrize("var", sorted(PARSED))
def test_each_variable_is_parsed(var):
    text, value = PARSED[var]
    name = DEFAULTS[var][0]
    assert getattr(Settings.from_env({var: text}), name) == value


@pytest.mark.parametrize("var", sorted(SECRETS))
def test_secrets_are_kept_but_never_shown(var):
    s = Settings.from_env({**SECRETS, "HOOK": "https://hooks.example.com/T0KEN-SECRET"})
    assert getattr(s, DEFAULTS[var][0]).get_secret_value() == SECRETS[var]
    assert s.named_secret("HOOK").get_secret_value() == "https://hooks.example.com/T0KEN-SECRET"
    assert s.named_secret("UNSET") is None
    for shown in (repr(s), str(s), repr(s.named_secret("HOOK"))):
        assert "SECRET" not in shown and "T0KEN" not in shown


@pytest.mark.parametrize("var, value, allowed", [
    ("GSDP_PROGRESS_SECONDS", "abc", "a number of seconds, 0 or more"),
    ("GSDP_SENSOR_WAREHOUSE_WAIT_SECONDS", "-1", "a number of seconds, 0 or more"),
    ("GSDP_BULK_STATUS_GRACE_SECONDS", "nan", "a number of seconds, 0 or more"),
    ("GSDP_SMTP_PORT", "smtp", "a TCP port number from 1 to 65535"),
    ("GSDP_BULK_PORT", "70000", "a TCP port number from 1 to 65535"),
    ("GSDP_UI_PORT", "0", "a TCP port number from 1 to 65535"),
    ("GSDP_DEMO_S3_PORT", "x", "a TCP port number from 0 to 65535"),
    ("GSDP_SMTP_STARTTLS", "maybe", "1 to switch it on"),
    ("GSDP_WAREHOUSE_MEMORY_LIMIT", "600", "a DuckDB memory limit"),
])
def test_a_bad_value_fails_naming_the_variable_and_what_is_allowed(var, value, allowed):
    with pytest.raises(SettingsError) as e:
        Settings.from_env({var: value})
    msg = str(e.value)
    assert msg.startswith(f"{var}={value!r} is not usable: it must be {allowed}"), msg
    assert "gs_assets/settings.py" in msg and "\n" not in msg


def test_a_bad_url_is_named_without_its_value_and_every_bad_variable_is_listed():
    with pytest.raises(SettingsError) as e:
        Settings.from_env({"GSDP_S3_ENDPOINT_URL": "minio:9000/T0KEN", "GSDP_SQS_ENDPOINT_URL": "ftp://x",
                           "GSDP_PROGRESS_SECONDS": "abc"})
    msg = str(e.value)
    assert "GSDP_S3_ENDPOINT_URL (value not shown) is not usable: it must be an http:// or https:// URL" in msg
    assert "GSDP_SQS_ENDPOINT_URL (value not shown)" in msg and "GSDP_PROGRESS_SECONDS='abc'" in msg
    assert "T0KEN" not in msg and "ftp" not in msg


def test_a_bad_value_fails_the_definitions_load_and_the_cli_with_one_paragraph(tmp_path, monkeypatch, capsys):
    from gs_assets import cli
    from gs_assets.definitions import build_definitions
    monkeypatch.setenv("GSDP_PROGRESS_SECONDS", "abc")
    with pytest.raises(SettingsError, match="GSDP_PROGRESS_SECONDS='abc'"):
        build_definitions(warehouse=str(tmp_path / "wh.duckdb"))
    assert cli.main(["validate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("settings error: GSDP_PROGRESS_SECONDS='abc' is not usable") and "Traceback" not in err


# Modules that start other processes and set variables for them (they may read what they set).
LAUNCHERS = {"gs_assets/demo/run_demo.py", "gs_assets/demo/run_ui.py", "gs_assets/demo/local_s3.py",
             "gs_assets/demo/local_databases.py",
             "benchmarks/load_usage.py", "benchmarks/api_sync.py", "benchmarks/sql_sync.py"}
# Modules that may set a variable for code they call (`gsdp --config/--warehouse`), never read one.
WRITERS = {"gs_assets/cli.py"}
SOURCE = ["gs_assets", "resources", "sensors", "schedules", "benchmarks"]


def environment_reads(path: Path, source: str, writes_ok: bool = True) -> list[str]:
    """Lines of `source` that use the environment (os.environ / os.getenv / environ imported from
    os); with `writes_ok`, leaving out plain writes (`os.environ[k] = v`, `del os.environ[k]`,
    `os.environ.update(...)`)."""
    tree = ast.parse(source, str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and \
                any(a.name in ("environ", "getenv", "environb", "getenvb") for a in node.names):
            out.append(f"{path}:{node.lineno}: imports the environment from os")
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
                and node.attr in ("environ", "getenv", "environb", "getenvb")):
            continue
        parent = parents.get(node)
        if not writes_ok:
            out.append(f"{path}:{node.lineno}: uses os.{node.attr}")
            continue
        if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, (ast.Store, ast.Del)):
            continue
        if isinstance(parent, ast.Attribute) and parent.attr == "update" and isinstance(parents.get(parent), ast.Call) \
                and isinstance(parents.get(parents[parent]), ast.Expr):
            continue
        out.append(f"{path}:{node.lineno}: reads os.{node.attr}")
    return sorted(out, key=lambda line: int(line.split(":")[1]))


def test_no_module_but_settings_reads_the_environment():
    stray = []
    for top in SOURCE:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "gs_assets/settings.py" or rel in LAUNCHERS:
                continue
            stray += environment_reads(Path(rel), path.read_text(), writes_ok=rel in WRITERS)
    assert not stray, ("read the environment through gs_assets.settings.Settings (or a resource built from it):\n"
                       + "\n".join(stray))


def test_the_scan_catches_reads_and_lets_writes_pass():
    src = ("import os\nfrom os import getenv\na = os.environ.get('X')\nb = os.getenv('Y')\nc = os.environ['Z']\n"
           "d = 'W' in os.environ\nos.environ['V'] = '1'\ndel os.environ['V']\nos.environ.update({})\n"
           "e = os.environ.setdefault('U', '1')\n")
    assert [line.split(":")[1] for line in environment_reads(Path("m.py"), src)] == ["2", "3", "4", "5", "6", "10"]
    assert len(environment_reads(Path("m.py"), src, writes_ok=False)) == 9  # lines 2-10


def test_readme_lists_every_variable():
    readme = (REPO / "README.md").read_text()
    env = readme[readme.index("Environment ("):]
    env = env[:env.index("\n\n")]
    missing = [f.metadata["env"] for f in Settings.variables() if f"`{f.metadata['env']}`" not in env]
    assert not missing and "gs_assets/settings.py" in env, missing


def test_smtp_and_sqs_resources_come_from_the_settings_with_secrets_as_env_vars(monkeypatch):
    import dagster as dg
    from resources.smtp import smtp_resource_from_settings
    from resources.sqs import sqs_resource_from_settings
    env = {"GSDP_SMTP_HOST": "mail.example.com", "GSDP_SMTP_PORT": "587", "GSDP_SMTP_USER": "gsdp",
           "GSDP_SMTP_STARTTLS": "1", "AWS_DEFAULT_REGION": "eu-west-1", "GSDP_S3_ENDPOINT_URL": "http://127.0.0.1:9",
           **SECRETS}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GSDP_SQS_ENDPOINT_URL", raising=False)
    smtp, sqs = smtp_resource_from_settings(), sqs_resource_from_settings(Settings.from_env(env))
    for shown in (repr(smtp), repr(sqs)):  # what the UI shows: the variables' names, not their values
        assert not any(value in shown for value in SECRETS.values()), shown
    assert isinstance(smtp.password, dg.EnvVar) and isinstance(sqs.aws_secret_access_key, dg.EnvVar)
    with dg.build_resources({"smtp": smtp, "sqs": sqs}) as res:
        assert (res.smtp.host, res.smtp.port, res.smtp.user, res.smtp.password, res.smtp.starttls) == \
               ("mail.example.com", 587, "gsdp", "pw-SECRET-smtp", True)
        # The SQS endpoint is the S3 one unless GSDP_SQS_ENDPOINT_URL names another.
        assert (res.sqs.endpoint_url, res.sqs.region_name, res.sqs.aws_access_key_id) == \
               ("http://127.0.0.1:9", "eu-west-1", "AKIA-SECRET-ID")
    monkeypatch.setenv("GSDP_SQS_ENDPOINT_URL", "http://127.0.0.1:10")
    with dg.build_resources({"sqs": sqs_resource_from_settings()}) as res:
        assert res.sqs.endpoint_url == "http://127.0.0.1:10"
    assert smtp_resource_from_settings(Settings.from_env({})).host is None
