"""analysis.tables: DataTable query parsing, server-side sort/page, JSON-safe rows, highlights."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis import tables
from analysis.tables import FilterClause, parse_filter_query


@pytest.mark.parametrize("query, expected", [
    ("", []),
    ("{sqnr_db} < 30", [FilterClause("sqnr_db", "lt", 30.0)]),
    ("{sqnr_db} s< 30", [FilterClause("sqnr_db", "lt", 30.0, "s")]),
    ("{sqnr_db} i< 30", [FilterClause("sqnr_db", "lt", 30.0, "i")]),     # what DataTable sends
    ("{variant} i= cnn", [FilterClause("variant", "eq", "cnn", "i")]),
    ("{sqnr_db} << 30", None),
    ('{variant} icontains "int8"', [FilterClause("variant", "contains", "int8", "i")]),
    ("{variant} scontains Int8", [FilterClause("variant", "contains", "Int8", "s")]),
    ("{fp32_name} = 'a b' && {axis} >= 1", [FilterClause("fp32_name", "eq", "a b"),
                                           FilterClause("axis", "ge", 1.0)]),
    ("{fp32_name} eq `x\\`y`", [FilterClause("fp32_name", "eq", "x`y")]),
    ("{reason} is blank", [FilterClause("reason", "blank")]),
    ("{reason} is not blank", [FilterClause("reason", "notblank")]),
    ("{sqnr_db} ge -1e3", [FilterClause("sqnr_db", "ge", -1000.0)]),
    ("{fp32_name} datestartswith fc", [FilterClause("fp32_name", "startswith", "fc")]),
])
def test_parse_filter_query(query, expected):
    if expected is None:
        with pytest.raises(ValueError):
            parse_filter_query(query)
    else:
        assert parse_filter_query(query) == expected


@pytest.mark.parametrize("query, msg", [
    ("{nope} < 1", "unknown column"),
    ("{sqnr_db} < 1 || {axis} = 0", "only &&"),
    ("sqnr_db < 1", "{column} operator value"),
    ("{sqnr_db} <", "give one value"),
    ("{reason} is blank x", "takes no value"),
])
def test_parse_filter_query_errors_are_readable(query, msg):
    with pytest.raises(ValueError, match=msg.replace("|", "\\|").replace("{", "\\{")):
        parse_filter_query(query)


def test_apply_filter_numeric_text_and_case(tiny):
    L = tiny.layers
    low = tables.apply_filter_query(L, "{sqnr_db} < 20")
    assert list(low["fp32_name"]) == ["fc2.weight"]
    assert set(tables.apply_filter_query(L, "{variant} icontains GOO")["variant"]) == {"good"}
    assert tables.apply_filter_query(L, "{variant} scontains GOO").empty
    both = tables.apply_filter_query(L, '{role} = weight && {granularity} = "per_channel"')
    assert list(zip(both["variant"], both["fp32_name"])) == [("coarse", "fc1.weight")]
    assert set(tables.apply_filter_query(L, "{reason} is not blank")["status"]) == {
        "left_in_float", "op_not_quantized", "not_matched", "unmatched_quant"}
    with pytest.raises(ValueError, match="number column"):
        tables.apply_filter_query(L, "{sqnr_db} < abc")


def test_sort_multi_and_blanks_last(tiny):
    rows = tables.table_rows(tiny.layers, sort_by=[{"column_id": "sqnr_db", "direction": "asc"}])
    s = rows["sqnr_db"].to_numpy(float)
    finite = s[~np.isnan(s)]
    assert list(finite) == sorted(finite) and np.isnan(s[len(finite):]).all()
    desc = tables.table_rows(tiny.layers, sort_by=[{"column_id": "variant", "direction": "desc"},
                                                   {"column_id": "fp32_name", "direction": "asc"}])
    assert desc["variant"].iloc[0] == "partial"


def test_table_view_pages_and_follows_the_selection(tiny):
    v = tables.table_view(tiny.layers, page=0, page_size=4)
    assert v.total == len(tiny.layers) and v.page_count == math.ceil(len(tiny.layers) / 4)
    assert len(v.records) == 4
    f = tables.table_view(tiny.layers, page=0, page_size=4, selected="fc3.bias", follow_selected=True)
    first = v.rows.index[v.rows["fp32_name"] == "fc3.bias"][0]
    assert f.page == first // 4
    assert any(r["fp32_name"] == "fc3.bias" for r in f.records)
    hi = [s for s in f.styles if s["if"].keys() == {"row_index"}]
    assert hi and all(f.records[s["if"]["row_index"]]["fp32_name"] == "fc3.bias" for s in hi)
    clamp = tables.table_view(tiny.layers, page=999, page_size=4)
    assert clamp.page == clamp.page_count - 1
    bad = tables.table_view(tiny.layers, query="{nope} = 1")
    assert bad.error and bad.total == len(tiny.layers)


def test_styles_flag_low_sqnr_and_missing_parameters(tiny):
    v = tables.table_view(tiny.layers, query="{variant} = coarse || ", page_size=50)
    assert v.error  # '||' is refused; rows stay unfiltered
    v = tables.table_view(tiny.layers, page_size=50)
    flagged = {(v.records[s["if"]["row_index"]]["variant"], v.records[s["if"]["row_index"]]["fp32_name"],
                s["if"].get("column_id")) for s in v.styles}
    assert ("coarse", "fc2.weight", "sqnr_db") in flagged
    assert ("good", "fc2.weight", "sqnr_db") not in flagged
    assert ("partial", "fc2.weight", "status") in flagged and ("partial", "fc2.weight", "reason") in flagged


def test_styles_flag_bad_parameters():
    page = pd.DataFrame([{c: None for c in [c for c, _, _ in tables.TABLE_COLUMNS]}])
    page.loc[0, ["status", "fp32_name", "sqnr_db", "clipped_frac", "diagnostics"]] = [
        "quantized", "w", 50.0, 0.5, "clipping"]
    extra = pd.DataFrame([{"zp_out_of_range": True, "scale_zero": 1, "scale_negative": 0, "scale_nonfinite": 0,
                           "fp32_nonfinite": 2, "quant_op": "DequantizeLinear"}])
    cols = {s["if"]["column_id"] for s in tables.table_styles(page, extra)}
    assert {"clipped_frac", "zero_point_min", "zero_point_max", "scale_min", "scale_max", "fp32_name",
            "diagnostics"} <= cols
    assert "sqnr_db" not in cols


def test_records_are_json_safe():
    df = pd.DataFrame({"a": [np.inf, -np.inf, np.nan, 1.5], "b": pd.array([1, None, 3, 4], dtype="Int64"),
                       "c": pd.array([True, None, False, True], dtype="boolean"), "d": ["x", None, "z", "w"]})
    recs = tables.json_records(df)
    assert recs[0] == {"a": "inf", "b": 1, "c": True, "d": "x"}
    assert recs[1] == {"a": "-inf", "b": None, "c": None, "d": None}
    assert recs[2]["a"] is None
    json.dumps(recs, allow_nan=False)


def test_exports_round_trip(tiny):
    rows = tables.table_rows(tiny.layers, "{variant} = coarse")
    csv = tables.to_csv(rows)
    back = pd.read_csv(__import__("io").StringIO(csv))
    assert list(back.columns) == [c for c, _, _ in tables.TABLE_COLUMNS]
    assert len(back) == 5 and set(back["variant"]) == {"coarse"}
    data = json.loads(tables.to_json(rows))
    assert len(data) == 5 and {d["fp32_name"] for d in data} == {"fc1.weight", "fc1.bias", "fc2.weight",
                                                                  "fc3.weight", "fc3.bias"}


def test_table_functions_never_mutate(tiny):
    before = tiny.layers.copy(deep=True)
    tables.table_view(tiny.layers, query="{sqnr_db} < 45", sort_by=[{"column_id": "mse", "direction": "desc"}],
                      selected="fc1.weight", follow_selected=True)
    tables.to_json(tables.table_rows(tiny.layers))
    pd.testing.assert_frame_equal(tiny.layers, before)
