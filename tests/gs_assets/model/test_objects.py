"""The matrix data model as config: standard objects, system fields, custom objects and fields."""

import pytest

from gs_assets.validators.errors import ConfigError
from gs_assets.model.field_types import FieldType
from gs_assets.model.objects import SYSTEM_FIELDS, load_data_model

STANDARD = {"company", "relationship", "relationship_type", "person", "company_person", "relationship_person",
            "user", "case", "company_usage", "person_usage", "activity_timeline", "cta", "survey_response",
            "subscription"}


def test_standard_objects_have_system_fields_and_typed_fields():
    m = load_data_model()
    assert STANDARD <= set(m.objects)
    for obj in m.objects.values():
        assert list(obj.fields)[:5] == list(SYSTEM_FIELDS)
    company = m.objects["company"]
    assert company.fields["name"].required
    assert company.fields["parent_company"].lookup == "company"
    assert company.fields["csm"].lookup == "user"
    assert company.fields["status"].values == ["Active", "Inactive", "Churned"]
    used = {f.type for o in m.objects.values() for f in o.fields.values()}
    assert used >= set(FieldType) - {FieldType.MULTI_SELECT, FieldType.PERCENTAGE}


def test_custom_objects_and_fields_come_from_config(tmp_path):
    f = tmp_path / "objects.yaml"
    f.write_text("""
custom_fields:
  company:
    segments__gc: {type: multi_select, values: [A, B]}
    churn_risk__gc: {type: percentage}
custom_objects:
  health_score__gc:
    fields:
      company_id: {type: gsid, lookup: company, required: true}
      score: {type: number}
""")
    m = load_data_model(f)
    assert m.objects["company"].fields["segments__gc"].type == FieldType.MULTI_SELECT
    assert m.objects["health_score__gc"].custom and "gsid" in m.objects["health_score__gc"].fields


@pytest.mark.parametrize("body,key,text", [
    ("custom_fields:\n  company:\n    tier: {type: string}\n", "custom_fields.company.tier", "ends in '__gc'"),
    ("custom_fields:\n  nothing:\n    x__gc: {type: string}\n", "custom_fields.nothing", "unknown object 'nothing'"),
    ("custom_fields:\n  company:\n    x__gc: {type: dropdown}\n", "custom_fields.company.x__gc", "needs 'values'"),
    ("custom_fields:\n  company:\n    x__gc: {type: colour}\n", "custom_fields.company.x__gc.type", "Input should be"),
    ("custom_objects:\n  thing:\n    fields: {a: {type: string}}\n", "custom_objects.thing", "ends in '__gc'"),
    ("custom_objects:\n  t__gc:\n    fields: {a: {type: gsid, lookup: nowhere}}\n", "custom_objects.t__gc.fields.a.lookup", "unknown object 'nowhere'"),
    ("custom_fields:\n  company:\n    x__gc: {type: gsid, lookup: nowhere}\n", "custom_fields.company.x__gc.lookup", "unknown object"),
    ("custom_objects:\n  t__gc:\n    fields: {gsid: {type: string}}\n", "custom_objects.t__gc.fields.gsid", "system field"),
    ("bogus: 1\n", "bogus", "unknown section"),
])
def test_broken_model_config_names_file_and_key(tmp_path, body, key, text):
    f = tmp_path / "objects.yaml"
    f.write_text(body)
    with pytest.raises(ConfigError) as e:
        load_data_model(f)
    assert str(f) in str(e.value) and key in str(e.value) and text in str(e.value)
