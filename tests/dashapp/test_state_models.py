"""dashapp.state (URL codec, selection reducer), dashapp.models (catalogue) and
dashapp.results (id validation, memo)."""

import subprocess
import sys

import pytest

from dashapp import ids
from dashapp.models import scan_models
from dashapp.results import Results, SelectionError
from dashapp.state import decode_url, encode_url, make_filters, points_keys, reduce_selection


def test_url_round_trip():
    state = dict(ref="abc123", variants=["v1", "v2"], layer="blocks.0/attn q&k=1", tab=ids.TAB_DISTRIBUTIONS,
                 ops=["Conv", "MatMul"], roles=["weight"], filter_variants=["cnn int8"], search="fc 1",
                 sqnr_below=32.5)
    q = encode_url(**state)
    assert q.startswith("?ref=abc123&v=v1%2Cv2")
    back = decode_url(q)
    assert back == {"ref": "abc123", "variants": ["v1", "v2"], "layer": "blocks.0/attn q&k=1",
                    "tab": ids.TAB_DISTRIBUTIONS, "ops": ["Conv", "MatMul"], "roles": ["weight"],
                    "filter_variants": ["cnn int8"], "search": "fc 1", "sqnr_below": 32.5}


@pytest.mark.parametrize("search", [None, "", "?", "?tab=evil&sqnr=nan&v=,,", "?sqnr=1e999", "?%zz=1&ref=",
                                    "?" + "&".join(f"k{i}=1" for i in range(100))])
def test_decode_url_never_raises_and_validates(search):
    s = decode_url(search)
    assert s["tab"] in ids.TAB_IDS and s["sqnr_below"] is None and s["variants"] == [] and s["ref"] is None


def test_encode_leaves_defaults_out():
    assert encode_url() == ""
    assert encode_url(ref="r", tab=ids.TAB_OVERVIEW) == "?ref=r"


def test_make_filters_cleans_inputs():
    f = make_filters(["Conv", {"x": 1}], None, ["a"], "  fc ", "not a number")
    assert f == {"ops": ["Conv"], "roles": [], "variants": ["a"], "search": "fc", "sqnr_below": None}
    assert make_filters(sqnr_below="30")["sqnr_below"] == 30.0


def test_selection_reducer_sources():
    cur = {"layer": None, "layers": []}
    click = {"points": [{"customdata": ["fc1.weight", "x"]}]}
    s = reduce_selection(cur, "click", click)
    assert s == {"layer": "fc1.weight", "layers": []} and cur == {"layer": None, "layers": []}
    box = {"points": [{"customdata": ["a"]}, {"customdata": ["b"]}, {"customdata": ["a"]}, {"x": 1}]}
    s = reduce_selection(s, "select", box)
    assert s == {"layer": "fc1.weight", "layers": ["a", "b"]}
    assert reduce_selection(s, "select", {"points": []})["layers"] == ["a", "b"]   # redraw artefact: ignored
    assert reduce_selection(s, "select", None)["layers"] == []
    rows = [{"fp32_name": "r0"}, {"fp32_name": "r1"}]
    assert reduce_selection(s, "table", ({"row": 1, "column": 0}, rows))["layer"] == "r1"
    assert reduce_selection(s, "table", ({"row": 9}, rows))["layer"] == "fc1.weight"   # out of range: ignored
    assert reduce_selection(s, "key", "k")["layer"] == "k"
    assert reduce_selection(s, "clear") == {"layer": None, "layers": []}
    assert reduce_selection("garbage", "click", {"points": "x"}) == {"layer": None, "layers": []}
    assert points_keys({"points": [{"customdata": "solo"}]}) == ["solo"]
    # the charts send the key escaped for plotly (& first, then < >): unescaped exactly
    from analysis.figures import _txt
    for raw in ["a<b>&c", "x&amp;y", "&lt;", "plain.weight"]:
        assert points_keys({"points": [{"customdata": _txt(raw)}]}) == [raw]
        assert points_keys({"points": [{"customdata": [_txt(raw), "extra"]}]}) == [raw]


def test_catalogue_ids_are_opaque_and_stable(tiny_dir):
    a, b = scan_models(tiny_dir), scan_models(tiny_dir)
    assert [e.id for e in a.entries] == [e.id for e in b.entries]
    names = [e.name for e in a.entries]
    assert names == sorted(names) and "fp32.onnx" in names
    for e in a.entries:
        assert len(e.id) == 12 and e.name not in e.id
    assert a.get("../../etc/passwd") is None and a.get(None) is None and a.get(["x"]) is None
    broken = [e for e in a.entries if e.name == "broken.onnx"][0]
    assert broken.error and broken.id not in {o["value"] for o in a.options()}
    by = {e.name: e for e in a.entries}
    assert by["fp32.onnx"].quantized is False and by["good.onnx"].quantized is True
    assert a.reference_guess().name == "fp32.onnx"
    assert [e.name for e in a.default_variants(a.reference_guess())] == [
        "coarse.onnx", "good.onnx", "other.onnx", "partial.onnx"]


def test_catalogue_skips_symlinks_leaving_the_folder(tmp_path, tiny_dir):
    (tmp_path / "inside.onnx").write_bytes((tiny_dir / "fp32.onnx").read_bytes())
    (tmp_path / "escape.onnx").symlink_to(tiny_dir / "good.onnx")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.onnx").write_bytes(b"")
    cat = scan_models(tmp_path)
    assert [e.name for e in cat.entries] == ["inside.onnx"]
    assert len(scan_models(tmp_path / "missing")) == 0


def test_results_validate_ids(tiny_dir):
    cat = scan_models(tiny_dir)
    by = {e.name: e.id for e in cat.entries}
    r = Results(cat)
    for ref, variants, msg in [
        (None, [by["good.onnx"]], "Choose an FP32"),
        ("deadbeef0000", [by["good.onnx"]], "Unknown reference"),
        (by["fp32.onnx"], [], "at least one"),
        (by["fp32.onnx"], [by["fp32.onnx"]], "at least one"),
        (by["fp32.onnx"], ["nope"], "Unknown variant"),
        (by["fp32.onnx"], [by["broken.onnx"]], "not a readable"),
        (by["fp32.onnx"], [by["good.onnx"]] * 2 + ["x"] * 8, "at most"),
    ]:
        with pytest.raises(SelectionError, match=msg):
            r.resolve(ref, variants)
    ref, vs = r.resolve(by["fp32.onnx"], by["good.onnx"])
    assert ref.name == "fp32.onnx" and [v.name for v in vs] == ["good.onnx"]


def test_results_memoize_and_label_by_relative_path(tiny_dir):
    cat = scan_models(tiny_dir)
    by = {e.name: e.id for e in cat.entries}
    r = Results(cat, max_entries=1)
    seen = []
    a = r.run(by["fp32.onnx"], [by["good.onnx"], by["coarse.onnx"]], progress=lambda d, t, l: seen.append((d, t, l)))
    assert a.variants == ["good", "coarse"] and seen and seen[-1][0] == seen[-1][1]
    assert r.get(by["fp32.onnx"], [by["good.onnx"], by["coarse.onnx"]]) is a
    r.get(by["fp32.onnx"], [by["good.onnx"]])         # evicts the first (max 1)
    assert r.get(by["fp32.onnx"], [by["good.onnx"], by["coarse.onnx"]]) is not a


def test_analysis_helpers_never_import_dash():
    code = ("import sys, analysis, analysis.views, analysis.figures, analysis.tables; "
            "assert not any(m == 'dash' or m.startswith('dash.') for m in sys.modules), 'dash imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_apply_patch_replays_dash_patches():
    from dash import Patch
    from dashapp.state import apply_patch, is_patch
    fig = {"data": [{"x": [1], "selectedpoints": [0]}, {"x": [2]}], "layout": {"shapes": [{"a": 1}], "h": 1}}
    p = Patch()
    p["layout"]["shapes"] = []
    p["data"][0]["selectedpoints"] = None
    p["data"][1]["selectedpoints"] = [0]
    del p["layout"]["h"]
    p["layout"].update({"w": 2})
    p["data"].append({"x": [3]})
    j = p.to_plotly_json()
    assert is_patch(j) and not is_patch(fig)
    out = apply_patch(fig, j)
    assert out == {"data": [{"x": [1], "selectedpoints": None}, {"x": [2], "selectedpoints": [0]}, {"x": [3]}],
                   "layout": {"shapes": [], "w": 2}}
    assert fig["layout"]["h"] == 1 and fig["data"][0]["selectedpoints"] == [0]     # input untouched
