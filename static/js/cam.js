/*
 * "Why?" over a result's photo: the class activation map of the chosen label,
 * a 7x7 grid drawn into a 7x7 canvas that the browser scales (smoothly) over
 * the photo. The toggle is a button with aria-pressed; the map is also said in
 * words (a status line) for screen readers. Without this script the controls
 * stay hidden and the photo is shown as it is.
 */
(() => {
  'use strict';

  // 0 (weak) .. 1 (strong) -> RGBA: blue through green to red, more opaque
  // where the evidence is stronger.
  function colour(value) {
    const v = Math.min(1, Math.max(0, Number(value) || 0));
    const hue = 240 * (1 - v);
    const channel = (n) => {
      const k = (n + hue / 30) % 12;
      return 0.5 - 0.5 * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    };
    return [channel(0), channel(8), channel(4)]
      .map((c) => Math.round(c * 255))
      .concat(Math.round(255 * (0.15 + 0.5 * v)));
  }

  function draw(canvas, grid) {
    const rows = grid.length;
    const cols = rows ? grid[0].length : 0;
    canvas.width = cols;
    canvas.height = rows;
    const context = canvas.getContext('2d');
    if (!context || !rows) return;
    const image = context.createImageData(cols, rows);
    grid.forEach((row, y) => {
      row.forEach((value, x) => image.data.set(colour(value), 4 * (y * cols + x)));
    });
    context.putImageData(image, 0, 0);
  }

  function enhance(root) {
    let maps;
    try {
      maps = JSON.parse(root.dataset.maps);
    } catch (err) {
      return;
    }
    const controls = root.querySelector('.why-controls');
    const toggle = root.querySelector('.why-toggle');
    const panel = root.querySelector('.why-panel');
    const select = root.querySelector('.why-select');
    const canvas = root.querySelector('.why-overlay');
    const description = root.querySelector('.why-description');
    if (!Array.isArray(maps) || !maps.length || !controls || !toggle || !canvas) return;

    function show() {
      const map = maps[Number(select.value)] || maps[0];
      draw(canvas, map.grid);
      description.textContent = `${map.label}: ${map.description}.`;
    }

    controls.hidden = false;
    toggle.addEventListener('click', () => {
      const on = toggle.getAttribute('aria-pressed') !== 'true';
      toggle.setAttribute('aria-pressed', String(on));
      canvas.hidden = !on;
      panel.hidden = !on;
      if (on) show();
    });
    select.addEventListener('change', show);
  }

  for (const root of document.querySelectorAll('.why[data-maps]')) enhance(root);
})();
