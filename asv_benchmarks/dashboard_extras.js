/* deepnet_fast's additions to asv 0.6's graph page (dashboard_extras.py
   writes this file into the published folder, after the data it reads,
   DEEPNET_DASHBOARD_DATA = {benchmark name: {title, description,
   reference_line}},
   and patches graphdisplay.js to call the two functions below).

   - show_benchmark(name), when asv opens a graph page: fills
     #deepnet-description above the graph with the benchmark's pretty name
     and docstrings.
   - before_plot(options, name, scale), before every $.plot of the main graph:
     moves the graph below the description (its height changes with the
     window's width) and, for a ratio benchmark, adds a horizontal line at its
     reference value (1.0) to flot's grid.markings, on an axis that reaches it
     (from 0, as asv draws times, unless "zoom y axis" or "log scale" is on);
     not in asv's "reference" (relative) scale, where values are divided by
     another point's. */
(function ($) {
    "use strict";

    var DATA = window.DEEPNET_DASHBOARD_DATA || {};
    var GRAPH_TOP = 48;      /* asv's offset of the plot in #graph (room for tags) */
    var LINE_COLOR = "#1a1a1a";

    function description_div() {
        var div = $("#deepnet-description");
        if (!div.length) {
            div = $('<div id="deepnet-description"></div>').css({
                position: "absolute", top: 0, left: 0, right: 0,
                "max-height": "35vh", "overflow-y": "auto",
                "font-size": "13px", "line-height": "1.35", color: "#333"
            });
            $("#graph").prepend(div);
        }
        return div;
    }

    function paragraph(segments) {
        var p = $("<p></p>").css({ margin: "0 0 4px 0" });
        $.each(segments, function (i, segment) {
            p.append(segment[1] ? $("<code></code>").text(segment[0])
                                : document.createTextNode(segment[0]));
        });
        return p;
    }

    function show_benchmark(name) {
        var info = DATA[name];
        var div = description_div();
        div.empty();
        if (!info) {
            div.hide();
            layout();
            return;
        }
        div.append($("<p></p>").css({ margin: "0 0 4px 0", "font-weight": "bold" })
                   .text(info.title));
        $.each(info.description, function (i, segments) {
            div.append(paragraph(segments));
        });
        div.show();
        layout();
    }

    function layout() {
        var div = $("#deepnet-description");
        var top = div.length && div.is(":visible") ? div.outerHeight(true) : 0;
        $("#main-graph").parent().css("top", (top + GRAPH_TOP) + "px");
    }

    function before_plot(options, name, scale) {
        layout();
        var info = DATA[name];
        if (!info || info.reference_line === null || scale.relative) {
            return;
        }
        var value = info.reference_line;
        var markings = options.grid.markings;
        for (var i = 0; i < markings.length; ++i) {
            if (markings[i].deepnet_reference_line) {
                markings.splice(i, 1);   /* zooming copies the options: one line */
                break;
            }
        }
        markings.push({ color: LINE_COLOR, lineWidth: 2, deepnet_reference_line: true,
                        yaxis: { from: value, to: value } });
        var low = options.yaxis.min, high = options.yaxis.max;
        if (!scale.log && !scale.zoom && typeof low === "number" && typeof high === "number") {
            options.yaxis.min = Math.min(0, low);
            options.yaxis.max = Math.max(high, value) * 1.3;
        }
    }

    window.deepnet_dashboard = {
        show_benchmark: show_benchmark,
        before_plot: before_plot
    };
})(jQuery);
