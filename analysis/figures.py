"""Plotly figures of the analysis tables: DataFrame in, ``go.Figure`` out, nothing else.

Each builder is a pure function of the tables :func:`analysis.analyze` returns (or their
filtered copies from :mod:`analysis.views`); none mutates its input.  Every trace that
stands for a layer carries the layer key (``fp32_name``) as ``customdata[0]``, so a click
or a box selection in the dashboard names the layer.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import views

__all__ = ["layer_range_chart", "sqnr_chart", "value_histogram_chart", "code_histogram_chart",
           "channel_chart", "empty_figure", "shorten", "ROW_PX"]

#: Pixels per layer row of the range chart (its height grows with the layer count).
ROW_PX = 18
_FP32_COLOR = "#7f8c8d"
_FLOAT_COLOR = "rgba(149,165,166,0.45)"
_FONT = dict(size=12)
_MAX_TICK_LABELS = 60


def _txt(s) -> str:
    """Model-controlled text made inert for plotly's pseudo-HTML (tags shown, not interpreted)."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc(values) -> list[str]:
    return [_txt(v) for v in values]


def shorten(name: str, width: int = 30) -> str:
    """``name`` cut in the middle to ``width`` characters (tick labels; hover shows it whole)."""
    name = str(name)
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "\u2026" + name[-(width - 1 - head):]


def empty_figure(message: str, height: int = 260) -> go.Figure:
    """A blank figure that shows ``message`` (empty states)."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#7b8a8b"))
    fig.update_layout(height=height, xaxis=dict(visible=False), yaxis=dict(visible=False),
                      plot_bgcolor="white", paper_bgcolor="white", margin=dict(l=10, r=10, t=10, b=10))
    return fig


def _base_layout(fig: go.Figure, height: int, uirevision) -> None:
    fig.update_layout(height=height, template="plotly_white", font=_FONT, uirevision=uirevision,
                      hoverlabel=dict(namelength=-1), clickmode="event")


def layer_range_chart(layers: pd.DataFrame, *, variants: Sequence[str], selected: str | None = None,
                      highlighted: Sequence[str] | None = None, uirevision=None) -> go.Figure:
    """Per-layer [min, max] of the weights: FP32 beside each variant, one row per layer.

    One column of horizontal floating bars per model (FP32 first), layers top to bottom
    in graph order, each bar from ``lo`` to ``hi`` (``base=lo``, ``x=hi-lo``) and coloured
    by ``log10(max |w|)`` on a shared Viridis scale.  A variant's weight without
    quantization parameters (left in float, op not quantized, not matched: the hover says
    which) is drawn as a hatched grey bar at the FP32 range.

    Parameters
    ----------
    layers : pandas.DataFrame
        Layers table rows (columns ``variant, fp32_name, layer, role, status, reason, order,
        fp32_min, fp32_max, dq_min, dq_max``).
    variants : sequence of str
        Variants to draw, in column order.
    selected : str, optional
        Layer key to highlight with a band.
    highlighted : sequence of str, optional
        Box-selected layer keys (the other bars are dimmed).
    uirevision : any
        Kept zoom/selection while it stays the same.

    Returns
    -------
    plotly.graph_objects.Figure
        ``customdata[:, 0]`` of every bar is the layer key.
    """
    rr = views.range_rows(layers, variants)
    if rr.empty:
        return empty_figure("No layers match the filters.")
    keys = views.layer_keys(layers)
    models = [views.FP32_LABEL] + [v for v in variants if (rr["model"] == v).any()]
    fig = make_subplots(rows=1, cols=len(models), shared_yaxes=True, horizontal_spacing=0.012,
                        subplot_titles=[_txt(shorten(m, 26)) for m in models])
    mag = np.log10(np.maximum(rr["absmax"].to_numpy(float), 1e-12))
    finite = mag[np.isfinite(mag)]
    cmin, cmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if cmax - cmin < 1e-9:
        cmin, cmax = cmin - 0.5, cmax + 0.5
    hl = set(highlighted or [])
    for col, model in enumerate(models, start=1):
        d = rr[rr["model"] == model]
        d = d.assign(_mag=np.log10(np.maximum(d["absmax"].to_numpy(float), 1e-12)))
        for quantized in (True, False) if model != views.FP32_LABEL else (None,):
            part = d if quantized is None else d[d["quantized"] == quantized]
            if part.empty:
                continue
            custom = np.column_stack([part["fp32_name"], _esc(part["fp32_name"]),
                                      _esc(part["layer"].fillna("")), part["status"].str.replace("_", " ")])
            sel = ([i for i, k in enumerate(part["fp32_name"]) if k in hl] if hl else None)
            float_bar = quantized is False
            marker = (dict(color=_FLOAT_COLOR, pattern=dict(shape="/", fgcolor="#95a5a6", size=5),
                           line=dict(width=0))
                      if float_bar else
                      dict(color=part["_mag"], colorscale="Viridis", cmin=cmin, cmax=cmax,
                           showscale=(col == len(models)), line=dict(width=0),
                           colorbar=dict(title=dict(text="max|w|", side="right"), thickness=12,
                                         lenmode="pixels", len=min(260, max(120, ROW_PX * len(keys))),
                                         y=1, yanchor="top", tickvals=list(range(math.floor(cmin), math.ceil(cmax) + 1)),
                                         ticktext=[f"1e{t}" for t in range(math.floor(cmin), math.ceil(cmax) + 1)])))
            label = "FP32" if model == views.FP32_LABEL else ("quantized" if quantized else "no parameters")
            fig.add_trace(go.Bar(
                y=part["fp32_name"], x=(part["hi"] - part["lo"]).to_numpy(float),
                base=part["lo"].to_numpy(float), orientation="h", marker=marker,
                name=_txt(f"{model} ({label})"), customdata=custom, selectedpoints=sel,
                unselected=dict(marker=dict(opacity=0.25)),
                hovertemplate=("<b>%{customdata[1]}</b><br>node %{customdata[2]}<br>"
                               "%{fullData.name}: from %{base:.4g}, %{x:.4g} wide<br>%{customdata[3]}"
                               "<extra></extra>"),
                showlegend=False), row=1, col=col)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=keys, autorange="reversed",
                     tickvals=keys, ticktext=[_txt(shorten(k)) for k in keys], tickfont=dict(size=11),
                     fixedrange=True)
    for i in range(2, len(models) + 1):
        fig.update_xaxes(matches="x", row=1, col=i)
        fig.update_yaxes(showticklabels=False, row=1, col=i)
    fig.update_xaxes(showgrid=True, zeroline=True, zerolinecolor="#bbb", side="top", tickfont=dict(size=10))
    fig.update_annotations(font=dict(size=12), yshift=22)
    if selected in keys:
        i = keys.index(selected)
        fig.add_shape(type="rect", xref="paper", x0=0, x1=1, yref="y", y0=i - 0.5, y1=i + 0.5,
                      fillcolor="rgba(231,76,60,0.15)", line=dict(color="#e74c3c", width=1), layer="below")
    height = max(260, 110 + ROW_PX * len(keys))
    _base_layout(fig, height, uirevision)
    fig.update_layout(margin=dict(l=10, r=10, t=70, b=10), bargap=0.25, dragmode="select")
    return fig


def sqnr_chart(layers: pd.DataFrame, *, variants: Sequence[str], threshold: float | None = None,
               selected: str | None = None, highlighted: Sequence[str] | None = None,
               uirevision=None, colors: dict | None = None) -> go.Figure:
    """Per-layer SQNR (dB) of each variant, layers in graph order on the x axis.

    An infinite SQNR (exact grid) is drawn at the top of the chart with a triangle and
    "exact" in the hover.  ``threshold`` draws a dashed line.

    Returns
    -------
    plotly.graph_objects.Figure
        One scatter trace per variant; ``customdata[:, 0]`` is the layer key.
    """
    sr = views.sqnr_rows(layers, variants)
    if sr.empty:
        return empty_figure("No quantized tensors match the filters.", height=300)
    present = set(sr["fp32_name"])  # built once: per key it made the chart O(keys x rows)
    keys = [k for k in views.layer_keys(layers) if k in present]
    colors = colors or views.variant_colors(variants)
    finite = sr.loc[np.isfinite(sr["sqnr_db"]), "sqnr_db"]
    top = float(finite.max()) + 5 if not finite.empty else 100.0
    hl = set(highlighted or [])
    many = len(keys) > _MAX_TICK_LABELS
    fig = go.Figure()
    for v in variants:
        d = sr[sr["variant"] == v]
        if d.empty:
            continue
        y = np.where(d["exact"], top, d["sqnr_db"])
        shown = np.where(d["exact"], "exact (inf)", [f"{s:.2f} dB" for s in d["sqnr_db"]])
        fig.add_trace(go.Scatter(
            x=d["fp32_name"], y=y, mode="markers" if many else "lines+markers", name=_txt(v),
            line=dict(color=colors.get(v), width=1.5), connectgaps=False,
            marker=dict(size=6 if many else 8, color=colors.get(v),
                        symbol=np.where(d["exact"], "triangle-up", "circle").tolist()),
            customdata=np.column_stack([d["fp32_name"], _esc(d["fp32_name"]), _esc(d["layer"].fillna("")), shown]),
            selectedpoints=([i for i, k in enumerate(d["fp32_name"]) if k in hl] if hl else None),
            unselected=dict(marker=dict(opacity=0.3)),
            hovertemplate="<b>%{customdata[1]}</b><br>node %{customdata[2]}<br>%{fullData.name}: "
                          "%{customdata[3]}<extra></extra>"))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=keys, showgrid=not many,
                     tickvals=keys, ticktext=[_txt(shorten(k, 18)) for k in keys], tickangle=-45,
                     showticklabels=not many, title_text=("layers in graph order (hover for names)" if many else None),
                     rangeslider=dict(visible=many, thickness=0.08))
    fig.update_yaxes(title_text="SQNR (dB)", rangemode="tozero")
    if threshold is not None and math.isfinite(threshold):
        fig.add_hline(y=threshold, line=dict(color="#e74c3c", dash="dash", width=1),
                      annotation_text=f"{threshold:g} dB", annotation_position="top left")
    if selected in keys:
        fig.add_vline(x=keys.index(selected), line=dict(color="#e74c3c", width=1))
    _base_layout(fig, 340 if not many else 380, uirevision)
    fig.update_layout(margin=dict(l=60, r=10, t=80, b=10), dragmode="select",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, font=dict(size=11)))
    return fig


def _bar_kwargs(h: pd.DataFrame) -> dict:
    left, right = h["left"].to_numpy(float), h["right"].to_numpy(float)
    return dict(x=(left + right) / 2, width=right - left, y=h["count"].to_numpy(float),
                customdata=np.column_stack([left, right]))


def value_histogram_chart(histograms: pd.DataFrame, key: str | None, *, variants: Sequence[str],
                          limits: pd.DataFrame | None = None, log: bool = False,
                          colors: dict | None = None) -> go.Figure:
    """FP32 values and each variant's dequantized values of one layer, on identical bins.

    One row per variant: the variant's histogram (coloured bars) under the FP32 one (dark
    outlines), both
    drawn from the tidy rows with ``x`` = bin centre and ``width = right - left``, so bins
    with the same index have the same edges in every trace.  ``limits`` (from
    :func:`analysis.views.grid_limits`) adds dashed lines at each grid's clip limits when
    they fall near the data.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    ref = views.histogram_rows(histograms, key, "fp32")
    dq = views.histogram_rows(histograms, key, "dq", variants)
    if ref.empty and dq.empty:
        return empty_figure("No histogram for this layer.")
    shown = [v for v in variants if (dq["variant"] == v).any()] or [views.FP32_LABEL]
    colors = colors or views.variant_colors(variants)
    fig = make_subplots(rows=len(shown), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[_txt(shorten(v, 60)) for v in shown])
    lo_all = min(ref["left"].min() if not ref.empty else np.inf, dq["left"].min() if not dq.empty else np.inf)
    hi_all = max(ref["right"].max() if not ref.empty else -np.inf, dq["right"].max() if not dq.empty else -np.inf)
    span = max(hi_all - lo_all, 1e-12)
    for i, v in enumerate(shown, start=1):
        d = dq[dq["variant"] == v]
        if not d.empty:
            fig.add_trace(go.Bar(name=_txt(f"{v} (dequantized)"), marker=dict(color=colors.get(v), line=dict(width=0)),
                                 opacity=0.75, **_bar_kwargs(d),
                                 hovertemplate="%{fullData.name} [%{customdata[0]:.4g}, %{customdata[1]:.4g}): "
                                               "%{y}<extra></extra>"), row=i, col=1)
        if not ref.empty:  # FP32 on top as outlines, so both stay visible
            fig.add_trace(go.Bar(name="FP32", marker=dict(color="rgba(0,0,0,0)", line=dict(color="#2c3e50", width=1)),
                                 legendgroup="fp32", **_bar_kwargs(ref),
                                 hovertemplate="FP32 [%{customdata[0]:.4g}, %{customdata[1]:.4g}): "
                                               "%{y}<extra></extra>"), row=i, col=1)
        lim = limits[limits["variant"] == v] if limits is not None and not limits.empty else None
        if lim is not None:
            for r in lim.itertuples():
                for x, side in ((r.lo, "min"), (r.hi, "max")):
                    if lo_all - span <= x <= hi_all + span:
                        fig.add_vline(x=x, row=i, col=1, line=dict(color="#c0392b", dash="dash", width=1.5),
                                      annotation_text=f"grid {side}",
                                      annotation_font=dict(size=10, color="#c0392b"),
                                      annotation_position="top left" if side == "max" else "top right")
    fig.update_layout(barmode="overlay", bargap=0)
    fig.update_yaxes(type="log" if log else "linear", title_text="count", title_font=dict(size=11))
    fig.update_xaxes(title_text="weight value", row=len(shown), col=1)
    _base_layout(fig, 80 + 170 * len(shown), key)
    fig.update_layout(margin=dict(l=60, r=10, t=40, b=40), showlegend=False)
    fig.update_annotations(font=dict(size=11))
    return fig


def code_histogram_chart(histograms: pd.DataFrame, key: str | None, *, variants: Sequence[str],
                         log: bool = False, colors: dict | None = None) -> go.Figure:
    """Histogram of the stored integer codes of one layer, one panel per variant.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    codes = views.histogram_rows(histograms, key, "code", variants)
    if codes.empty:
        return empty_figure("No quantized codes for this layer (left in float?).", height=200)
    shown = [v for v in variants if (codes["variant"] == v).any()]
    colors = colors or views.variant_colors(variants)
    fig = make_subplots(rows=1, cols=len(shown), subplot_titles=[_txt(shorten(v, 34)) for v in shown],
                        horizontal_spacing=0.06)
    for i, v in enumerate(shown, start=1):
        d = codes[codes["variant"] == v]
        fig.add_trace(go.Bar(name=_txt(v), marker=dict(color=colors.get(v)), showlegend=False,
                             **_bar_kwargs(d),
                             hovertemplate="codes [%{customdata[0]:.0f}, %{customdata[1]:.0f}): "
                                           "%{y}<extra></extra>"), row=1, col=i)
    fig.update_layout(bargap=0)
    fig.update_yaxes(type="log" if log else "linear")
    fig.update_yaxes(title_text="count", row=1, col=1)
    fig.update_xaxes(title_text="integer code")
    _base_layout(fig, 260, key)
    fig.update_layout(margin=dict(l=60, r=10, t=40, b=40))
    fig.update_annotations(font=dict(size=11))
    return fig


def channel_chart(channels: pd.DataFrame, key: str | None, *, variants: Sequence[str],
                  colors: dict | None = None) -> go.Figure:
    """Per-channel view of one layer: FP32 and dequantized ranges, and scales.

    Top: each channel's FP32 [min, max] (grey floating bar) and each variant's dequantized
    [min, max] (coloured markers joined by a line).  Bottom: each variant's scale per
    channel (min to max over the channel's blocks for block-wise tensors).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    ch = views.channel_rows(channels, key, variants)
    if ch.empty:
        return empty_figure("No per-channel or block-wise tensor for this layer.", height=160)
    colors = colors or views.variant_colors(variants)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4],
                        subplot_titles=["range per channel", "scale per channel"])
    first = ch.drop_duplicates("channel")
    fig.add_trace(go.Bar(x=first["channel"], y=(first["fp32_max"] - first["fp32_min"]).to_numpy(float),
                         base=first["fp32_min"].to_numpy(float), name="FP32 range",
                         marker=dict(color=_FP32_COLOR), opacity=0.45,
                         hovertemplate="channel %{x}: FP32 [%{base:.4g}, +%{y:.4g}]<extra></extra>"),
                  row=1, col=1)
    for v in variants:
        d = ch[ch["variant"] == v]
        if d.empty:
            continue
        c = colors.get(v)
        for col in ("dq_min", "dq_max"):
            fig.add_trace(go.Scatter(x=d["channel"], y=d[col], mode="markers",
                                     name=_txt(f"{v} (dequantized min/max)"),
                                     legendgroup=v, showlegend=(col == "dq_min"),
                                     marker=dict(color=c, size=5, symbol="line-ew-open", line=dict(width=2, color=c)),
                                     hovertemplate="%{fullData.name}, channel %{x}: " + col[3:]
                                                   + " %{y:.4g}<extra></extra>"),
                          row=1, col=1)
        blockwise = bool((d["scale_max"] != d["scale_min"]).any())
        fig.add_trace(go.Scatter(
            x=d["channel"], y=d["scale_max"] if blockwise else d["scale_min"], mode="markers",
            name=_txt(f"{v} scale"), legendgroup=v, showlegend=False, marker=dict(color=c, size=5),
            error_y=(dict(type="data", symmetric=False, array=np.zeros(len(d)),
                          arrayminus=(d["scale_max"] - d["scale_min"]).to_numpy(float), thickness=1, width=0)
                     if blockwise else None),
            hovertemplate="%{fullData.name}, channel %{x}: %{y:.4g}" + (" (max over blocks)" if blockwise else "")
                          + "<extra></extra>"), row=2, col=1)
    fig.update_xaxes(title_text="output channel", row=2, col=1)
    fig.update_yaxes(title_text="value", row=1, col=1)
    fig.update_yaxes(title_text="scale", row=2, col=1)
    _base_layout(fig, 420, key)
    fig.update_layout(margin=dict(l=60, r=10, t=50, b=40), barmode="overlay",
                      legend=dict(orientation="h", yanchor="bottom", y=1.06, x=0, font=dict(size=11)))
    fig.update_annotations(font=dict(size=11))
    return fig
