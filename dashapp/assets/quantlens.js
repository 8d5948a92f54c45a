/* QuantLens clientside callbacks (served from dashapp/assets). */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    quantlens: {
        /* Scroll the range chart's box so the selected row's band is in view: a layer selected
           elsewhere (SQNR chart, table, link) may sit below the fold of its page. Waits for
           plotly to draw the new figure; does nothing when the band is already visible. */
        scrollToSelection: function (figure, boxId, graphId) {
            var shapes = ((figure || {}).layout || {}).shapes || [];
            var want = shapes.filter(function (s) { return s.name === "selection" && s.yref === "y"; })[0];
            if (!want) { return window.dash_clientside.no_update; }
            var mid = (want.y0 + want.y1) / 2;
            var tries = 0;
            (function attempt() {
                var box = document.getElementById(boxId);
                var gd = document.querySelector("#" + graphId + " .js-plotly-plot");
                var fl = gd && gd._fullLayout;
                var drawn = fl && (fl.shapes || []).some(function (s) {
                    return s.name === "selection" && (s.y0 + s.y1) / 2 === mid;
                });
                if (!box || !drawn) {
                    if (++tries < 20) { setTimeout(attempt, 100); }
                    return;
                }
                var y = fl.yaxis.l2p(mid) + fl._size.t;
                if (y < box.scrollTop + 30 || y > box.scrollTop + box.clientHeight - 30) {
                    box.scrollTop = Math.max(0, y - box.clientHeight / 2);
                }
            })();
            return window.dash_clientside.no_update;
        }
    }
});
