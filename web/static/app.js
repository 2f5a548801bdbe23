// coachloop: the only script of the app's own. Pages work without it; it adds the call
// player (jumps to a quote's moment) and draws the skill trends with uPlot.
(function () {
  "use strict";
  var player = document.getElementById("player");
  if (!player) { return; }

  function playFrom(src, seconds) {
    var start = function () {
      player.currentTime = seconds;
      var playing = player.play();
      if (playing && playing.catch) { playing.catch(function () {}); }  // autoplay refused: the controls remain
    };
    if (src && player.getAttribute("src") !== src) {
      player.setAttribute("src", src);
      player.addEventListener("loadedmetadata", start, { once: true });
      player.load();
    } else if (player.readyState >= 1) {
      start();
    } else {
      player.addEventListener("loadedmetadata", start, { once: true });
      player.load();
    }
    player.dataset.lastJump = String(seconds);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.play");
    if (!button) { return; }
    event.preventDefault();
    playFrom(button.dataset.src, parseFloat(button.dataset.t) || 0);
  });

  if (player.dataset.start) {  // the call page opened at a moment (?t=)
    var at = parseFloat(player.dataset.start) || 0;
    player.addEventListener("loadedmetadata", function () { player.currentTime = at; }, { once: true });
  }

  // The transcript line being spoken is marked as the recording plays.
  var lines = Array.prototype.slice.call(document.querySelectorAll("[data-start]"))
    .filter(function (el) { return el !== player; });
  if (lines.length) {
    var current = null;
    player.addEventListener("timeupdate", function () {
      var t = player.currentTime, found = null;
      for (var i = 0; i < lines.length; i++) {
        if (parseFloat(lines[i].dataset.start) <= t) { found = lines[i]; } else { break; }
      }
      if (found !== current) {
        if (current) { current.classList.remove("speaking"); }
        if (found) { found.classList.add("speaking"); }
        current = found;
      }
    });
  }
})();

(function () {
  "use strict";
  var source = document.getElementById("trend-data");
  if (!source || !window.uPlot) { return; }
  var data = JSON.parse(source.textContent);
  var figures = document.querySelectorAll("figure.chart[data-skill]");
  Array.prototype.forEach.call(figures, function (figure) {
    var skill = data[figure.dataset.skill];
    if (!skill) { return; }
    var xs = [], mid = [], low = [], high = [], thin = [];
    skill.points.forEach(function (p) {
      xs.push(Date.parse(p.as_of + "T00:00:00Z") / 1000);
      mid.push(p.shrunk); low.push(p.interval_low); high.push(p.interval_high);
      thin.push(p.state === "ok" ? null : p.shrunk);
    });
    var plot = figure.querySelector(".plot");
    var width = Math.max(240, Math.min(plot.clientWidth || 360, 560));
    var chart = new window.uPlot({
      width: width, height: 170, legend: { show: false }, cursor: { y: false },
      scales: { y: { range: [0, 100] } },
      axes: [{ size: 28 }, { size: 42 }],
      series: [{},
        { label: "high", stroke: "transparent", points: { show: false } },
        { label: "low", stroke: "transparent", points: { show: false } },
        { label: "estimate", stroke: "#1f5fbf", width: 2, points: { size: 5 } },
        { label: "too few calls", stroke: "transparent", points: { size: 7, stroke: "#8a5a00", fill: "#fff", dash: [2, 2] } }],
      bands: [{ series: [1, 2], fill: "rgba(31, 95, 191, 0.18)" }]
    }, [xs, high, low, mid, thin], plot);
    figure.uplot = chart;
  });
})();


(function () {
  "use strict";
  // A running backfill: look again in a few seconds (a page, not a socket: nothing to keep).
  var box = document.querySelector("[data-refresh]");
  if (box) { setTimeout(function () { location.reload(); }, 1000 * parseFloat(box.dataset.refresh)); }
})();
