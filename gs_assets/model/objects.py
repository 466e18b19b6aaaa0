"""Object definitions of the matrix data model: standard objects shipped with the package,
plus custom objects and custom fields (`__gc`) from the user's config.

A new object is config, not code: everything downstream (warehouse tables, pandera schemas,
destination assets, mapping checks) is derived from these definitions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gs_assets.validators.errors import ConfigError, format_pydantic_errors
from gs_assets.model.field_types import DEFAULT_DECIMALS, FieldType

STANDARD_OBJECTS_FILE = Path(__file__).with_name("standard_objects.yaml")
API_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SYSTEM_FIELDS = ("gsid", "created_by", "created_at", "modified_by", "modified_at")


class FieldDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    label: str = ""
    type: FieldType
    required: bool = False
    max_length: Optional[int] = Field(default=None, gt=0)
    decimals: Optional[int] = Field(default=None, ge=0, le=10)
    values: list[str] = Field(default_factory=list)  # dropdown / multi_select picklist
    lookup: Optional[str] = None  # object the GSID points at (type gsid)
    min: Optional[float] = None
    max: Optional[float] = None
    system: bool = False

    @model_validator(mode="after")
    def _check_type_options(self) -> "FieldDef":
        if self.type in (FieldType.DROPDOWN, FieldType.MULTI_SELECT) and not self.values:
            raise ValueError(f"a {self.type.value} field needs 'values' (the allowed items)")
        if self.values and self.type not in (FieldType.DROPDOWN, FieldType.MULTI_SELECT):
            raise ValueError("'values' is only allowed on dropdown and multi_select fields")
        if self.type == FieldType.GSID and not self.lookup:
            raise ValueError("a gsid field needs 'lookup': the object its GSID points at")
        if self.lookup and self.type != FieldType.GSID:
            raise ValueError("'lookup' is only allowed on gsid fields")
        if self.decimals is not None and not self.type.is_numeric:
            raise ValueError("'decimals' is only allowed on number, currency and percentage fields")
        return self

    @property
    def effective_decimals(self) -> Optional[int]:
        if not self.type.is_numeric:
            return None
        return self.decimals if self.decimals is not None else DEFAULT_DECIMALS[self.type]

    @property
    def effective_max_length(self) -> Optional[int]:
        if self.type == FieldType.GSID:
            return 36
        if self.type.is_text:
            return self.max_length or 4000
        return None


class ObjectDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    label: str = ""
    custom: bool = False
    description: str = ""
    fields: dict[str, FieldDef]

    @field_validator("fields")
    @classmethod
    def _names(cls, v: dict[str, FieldDef]) -> dict[str, FieldDef]:
        for name in v:
            if not API_NAME.match(name):
                raise ValueError(f"field name {name!r} must be snake_case (a-z, 0-9, _)")
        return v

    def field(self, name: str) -> FieldDef:
        return self.fields[name]

    @property
    def data_fields(self) -> list[FieldDef]:
        return [f for f in self.fields.values() if not f.system]

    @property
    def table(self) -> str:
        return f"gs.{self.name}"


def _system_fields() -> dict[str, FieldDef]:
    return {
        "gsid": FieldDef(name="gsid", label="GSID", type=FieldType.STRING, required=True,
                         max_length=36, system=True),
        "created_by": FieldDef(name="created_by", label="Created By", type=FieldType.STRING, system=True),
        "created_at": FieldDef(name="created_at", label="Created Date", type=FieldType.DATETIME, system=True),
        "modified_by": FieldDef(name="modified_by", label="Modified By", type=FieldType.STRING, system=True),
        "modified_at": FieldDef(name="modified_at", label="Modified Date", type=FieldType.DATETIME, system=True),
    }


class DataModel(BaseModel):
    """All objects, standard and custom, keyed by API name."""

    objects: dict[str, ObjectDef]

    def get(self, name: str, *, file: str, key: str) -> ObjectDef:
        if name not in self.objects:
            raise ConfigError(file, key, f"unknown object {name!r}; known objects: {', '.join(sorted(self.objects))}")
        return self.objects[name]


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML config file whose top level is a mapping; anything else is a ConfigError naming the file.
    A key written twice in one mapping (YAML would keep the last silently) is an error too."""
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            if node is not None:
                _refuse_duplicate_keys(loader, node, "", str(path))
            data = (loader.construct_document(node) if node is not None else None) or {}
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise ConfigError(str(path), "(file)", f"not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(str(path), "(file)", "the top level must be a mapping")
    return data


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.Node, key: str, file: str,
                           seen: Optional[set[int]] = None) -> None:
    """Walk the composed YAML (before it becomes dicts, where a repeated key just overwrites)."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias to an anchor already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, tuple[int, str]] = {}
        for knode, vnode in node.value:
            name = _key_value(loader, knode)
            shown = knode.value if isinstance(knode, yaml.ScalarNode) else "?"
            child = f"{key}.{shown}" if key else str(shown)
            if name is not None and knode.tag != "tag:yaml.org,2002:merge":
                line = knode.start_mark.line + 1
                if name in first:
                    line0, shown0 = first[name]
                    same = "written twice" if shown0 == shown else f"the same key as {shown0!r} once YAML reads them"
                    raise ConfigError(file, child, f"key {shown!r} is {same} in one mapping (lines {line0} and {line}); "
                                                   f"YAML would keep only the last: remove one")
                first[name] = (line, shown)
            _refuse_duplicate_keys(loader, vnode, child, file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(loader, item, f"{key}[{i}]", file, seen)


def _key_value(loader: yaml.SafeLoader, knode: yaml.Node) -> Any:
    """A scalar key as YAML reads it (`1` and `"1"` differ, `yes` and `true` are the same), else None."""
    if not isinstance(knode, yaml.ScalarNode):
        return None
    try:
        value = loader.construct_object(knode)
        hash(value)
        return value
    except (yaml.YAMLError, TypeError):
        return knode.value


def _parse_object(name: str, body: Any, file: str, key: str, custom: bool) -> ObjectDef:
    if not isinstance(body, dict):
        raise ConfigError(file, key, "an object must be a mapping with 'fields'")
    try:
        obj = ObjectDef.model_validate({**body, "name": name, "custom": custom})
    except ValidationError as e:
        raise format_pydantic_errors(file, key, e, ObjectDef) from e
    for fname, fdef in obj.fields.items():
        fdef.name = fname
        fdef.label = fdef.label or fname.replace("__gc", "").replace("_", " ").title()
        if fname in SYSTEM_FIELDS:
            raise ConfigError(file, f"{key}.fields.{fname}", f"{fname!r} is a system field and is added to every object")
    obj.label = obj.label or name.replace("__gc", "").replace("_", " ").title()
    obj.fields = {**_system_fields(), **obj.fields}
    return obj


def load_data_model(custom_file: Optional[Path] = None) -> DataModel:
    """Standard objects plus the user's custom objects and custom fields, checked as a whole."""
    std_file = str(STANDARD_OBJECTS_FILE)
    std = read_yaml_mapping(STANDARD_OBJECTS_FILE)
    objects: dict[str, ObjectDef] = {}
    for name, body in (std.get("objects") or {}).items():
        objects[name] = _parse_object(name, body, std_file, f"objects.{name}", custom=False)

    # Where each object / custom field was defined: (file, key prefix), so errors point there.
    sources: dict[str, tuple[str, str]] = {name: (std_file, f"objects.{name}.fields") for name in objects}
    if custom_file is not None and Path(custom_file).exists():
        cfile = str(custom_file)
        data = read_yaml_mapping(Path(custom_file))
        unknown = set(data) - {"custom_objects", "custom_fields"}
        if unknown:
            raise ConfigError(cfile, sorted(unknown)[0], "unknown section; allowed: custom_objects, custom_fields")
        for name, body in (data.get("custom_objects") or {}).items():
            key = f"custom_objects.{name}"
            if not name.endswith("__gc") or not API_NAME.match(name):
                raise ConfigError(cfile, key, "a custom object's API name is snake_case and ends in '__gc' (for example 'health_score__gc')")
            if name in objects:
                raise ConfigError(cfile, key, "an object of this name already exists")
            objects[name] = _parse_object(name, body, cfile, key, custom=True)
            sources[name] = (cfile, f"{key}.fields")
        for obj_name, fields in (data.get("custom_fields") or {}).items():
            key = f"custom_fields.{obj_name}"
            if obj_name not in objects:
                raise ConfigError(cfile, key, f"unknown object {obj_name!r}; known objects: {', '.join(sorted(objects))}")
            if not isinstance(fields, dict):
                raise ConfigError(cfile, key, "custom fields are a mapping of field name to definition")
            for fname, fbody in fields.items():
                fkey = f"{key}.{fname}"
                if not fname.endswith("__gc") or not API_NAME.match(fname):
                    raise ConfigError(cfile, fkey, "a custom field's API name is snake_case and ends in '__gc' (for example 'tier__gc')")
                if fname in objects[obj_name].fields:
                    raise ConfigError(cfile, fkey, "a field of this name already exists on the object")
                try:
                    fdef = FieldDef.model_validate(fbody)
                except ValidationError as e:
                    raise format_pydantic_errors(cfile, fkey, e, FieldDef) from e
                fdef.name = fname
                fdef.label = fdef.label or fname.replace("__gc", "").replace("_", " ").title()
                objects[obj_name].fields[fname] = fdef
                sources[f"{obj_name}.{fname}"] = (cfile, key)

    # Lookups must point at objects that exist.
    for oname, obj in objects.items():
        for fname, fdef in obj.fields.items():
            if fdef.type == FieldType.GSID and fdef.lookup not in objects:
                src, prefix = sources.get(f"{oname}.{fname}", sources[oname])
                raise ConfigError(src, f"{prefix}.{fname}.lookup",
                                  f"lookup to unknown object {fdef.lookup!r}; known objects: {', '.join(sorted(objects))}")
    return DataModel(objects=objects)
