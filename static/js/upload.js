/*
 * Snapclass upload page: progressive enhancement for #upload-form.
 *
 * Without this script the page is a plain multipart form. With it, photos can
 * be dropped onto the drop zone or pasted, several selections add up, each
 * file gets a preview with a Remove button, files are checked against the
 * server's limits before upload (the server still decides), and the upload
 * runs in the background with a progress bar for the upload and a busy state
 * while the model works. The chosen files are also copied back into the
 * <input type="file"> (via DataTransfer) so a plain submit still sends them.
 *
 * More photos than one request may carry (MAX_FILES_PER_REQUEST, from the
 * form's data-max-files), or a folder (the folder picker or a dropped folder),
 * are sent as a named batch: the script creates the batch, then posts the
 * photos to /predict a request at a time, with one progress bar for them all.
 * It waits as long as Retry-After says on 429 and 503 and sends again, can be
 * paused and cancelled, skips what is not an image (saying why), and ends
 * with a summary and a link to the batch's page.
 *
 * Previews are drawn on a <canvas> from createImageBitmap(): no blob: or
 * data: URLs, so a Content-Security-Policy of default-src 'self' holds, and
 * the browser applies the photo's EXIF orientation as the server does.
 */
(() => {
  'use strict';

  const form = document.getElementById('upload-form');
  const input = document.getElementById('image-input');
  const zone = document.getElementById('drop-zone');
  const previews = document.getElementById('previews');
  if (!form || !input || !zone || !previews) return;

  const errorBox = document.getElementById('client-errors');
  const progress = document.getElementById('upload-progress');
  const progressBar = document.getElementById('upload-progress-bar');
  const progressText = document.getElementById('upload-progress-text');
  const statusBox = document.getElementById('upload-status');
  const button = document.getElementById('submit-button');
  const chooseButton = document.getElementById('choose-button');
  const label = zone.querySelector('label');

  const ALLOWED_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/bmp']);
  const TYPE_BY_EXTENSION = {
    jpg: 'image/jpeg', jpeg: 'image/jpeg', jpe: 'image/jpeg', png: 'image/png',
    webp: 'image/webp', gif: 'image/gif', bmp: 'image/bmp', dib: 'image/bmp',
  };
  const TYPE_ALIASES = { 'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg', 'image/x-ms-bmp': 'image/bmp' };
  // Room for the multipart boundaries and headers around each file.
  const PART_OVERHEAD = 512;
  const PREVIEW_SIZE = 240;
  // Previews drawn at most; a folder of hundreds shows these and a count.
  const PREVIEW_LIMIT = 24;
  // A bound on one selection, far above any folder people send at once.
  const MAX_CHOSEN = 5000;
  // Waits for 429/503 before a request is given up (Cancel stops sooner).
  const MAX_WAITS = 60;
  const NETWORK_RETRIES = 3;

  const positiveInt = (value, fallback) => {
    const n = Number.parseInt(value, 10);
    return Number.isFinite(n) && n > 0 ? n : fallback;
  };
  const maxBytes = positiveInt(form.dataset.maxBytes, 10 * 1024 * 1024);
  const maxFiles = positiveInt(form.dataset.maxFiles, 16);
  const maxPixels = positiveInt(form.dataset.maxPixels, 40000000);
  const predictUrl = form.dataset.predictUrl || '/predict';
  const batchesUrl = form.dataset.batchesUrl || '/api/batches';
  const folderInput = document.getElementById('folder-input');
  const cameraInput = document.getElementById('camera-input');
  const batchName = document.getElementById('batch-name');
  const batchControls = document.getElementById('batch-controls');
  const pauseButton = document.getElementById('pause-button');
  const cancelButton = document.getElementById('cancel-button');
  const summary = document.getElementById('upload-summary');

  const canSync = (() => {
    try {
      const dt = new DataTransfer();
      dt.items.add(new File([''], 'probe.txt', { type: 'text/plain' }));
      return dt.files.length === 1;
    } catch (err) {
      return false;
    }
  })();

  /** @type {{file: File, id: number}[]} */
  let chosen = [];
  let nextId = 0;
  let pasteCount = 0;
  let busy = false;
  // The folder a selection came from, for the batch's default name.
  let folderName = '';
  // Files a folder held that are not photos: [{name, reason}].
  let skipped = [];
  /** The running batch upload: paused, cancelled, and what wakes a wait. */
  let run = null;

  function formatBytes(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

  function typeOf(file) {
    const type = (file.type || '').toLowerCase();
    if (type) return TYPE_ALIASES[type] || type;
    const dot = file.name.lastIndexOf('.');
    return dot >= 0 ? TYPE_BY_EXTENSION[file.name.slice(dot + 1).toLowerCase()] || '' : '';
  }

  function announce(message) {
    if (statusBox) statusBox.textContent = message;
  }

  function showErrors(messages) {
    if (!errorBox) return;
    errorBox.replaceChildren();
    if (!messages.length) {
      errorBox.hidden = true;
      return;
    }
    const list = document.createElement('ul');
    for (const message of messages) {
      const item = document.createElement('li');
      item.textContent = message;
      list.append(item);
    }
    errorBox.append(list);
    errorBox.hidden = false;
  }

  /** Problems with one file on its own, or null when it is acceptable. */
  function problemWith(file) {
    if (!ALLOWED_TYPES.has(typeOf(file))) {
      return `${file.name}: not a supported image. Use JPEG, PNG, WebP, GIF or BMP.`;
    }
    if (file.size === 0) return `${file.name}: the file is empty.`;
    if (file.size + PART_OVERHEAD > maxBytes) {
      return `${file.name} is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`;
    }
    return null;
  }

  /** Problems with the whole selection, as one request would carry it. */
  function problemsWithRequest(files) {
    const errors = [];
    if (!files.length) return ['Choose at least one photo first.'];
    for (const file of files) {
      const problem = problemWith(file);
      if (problem) errors.push(problem);
    }
    if (files.length > maxFiles) {
      errors.push(`At most ${maxFiles} photos per upload; you chose ${files.length}.`);
    }
    const total = files.reduce((sum, file) => sum + file.size + PART_OVERHEAD, 0);
    if (files.length > 1 && total > maxBytes) {
      errors.push(
        `Together these photos are ${formatBytes(total)}, more than the ${formatBytes(maxBytes)} ` +
        'one upload may carry. Remove some and send them in a second upload.'
      );
    }
    return errors;
  }

  const sameFile = (a, b) => a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;

  function addFiles(files) {
    if (busy) return;
    const errors = [];
    let added = 0;
    for (const file of files) {
      const problem = problemWith(file);
      if (problem) {
        errors.push(problem);
        skipped.push({ name: file.name, reason: problem });
      } else if (chosen.some((entry) => sameFile(entry.file, file))) {
        continue; // chosen twice: keep one copy
      } else if (chosen.length >= MAX_CHOSEN) {
        errors.push(`At most ${MAX_CHOSEN} photos at once: ${file.name} was left out.`);
      } else {
        chosen.push({ file, id: nextId++ });
        added += 1;
      }
    }
    sync();
    render();
    // A folder may hold many other files: list ten, count the rest.
    const shown = errors.slice(0, 10);
    if (errors.length > shown.length) shown.push(`…and ${errors.length - shown.length} more skipped.`);
    showErrors(shown);
    if (added) announce(`${plural(added, 'photo')} added; ${chosen.length} chosen.`);
  }

  function removeEntry(id, reason) {
    const index = chosen.findIndex((entry) => entry.id === id);
    if (index < 0) return;
    const [entry] = chosen.splice(index, 1);
    sync();
    render();
    if (reason) {
      showErrors([reason]);
    } else {
      showErrors([]);
      announce(`${entry.file.name} removed; ${chosen.length} chosen.`);
      const buttons = previews.querySelectorAll('button');
      const next = buttons[Math.min(index, buttons.length - 1)];
      (next || zone).focus();
    }
  }

  /** Copy the chosen files into the file input, so a normal submit sends them. */
  function sync() {
    const dt = new DataTransfer();
    for (const entry of chosen) dt.items.add(entry.file);
    input.files = dt.files;
    // The folder and camera inputs' files are in the list now: not twice.
    for (const other of [folderInput, cameraInput]) if (other) other.value = '';
  }

  /** Draw a preview of the photo (EXIF orientation applied) and check its size. */
  async function drawPreview(entry, holder) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(entry.file, { imageOrientation: 'from-image' });
    } catch (err) {
      // The browser cannot decode it; the server will say whether it can.
      const placeholder = document.createElement('span');
      placeholder.className = 'preview-placeholder';
      placeholder.textContent = 'No preview';
      holder.replaceChildren(placeholder);
      return;
    }
    const { width, height } = bitmap;
    if (width * height > maxPixels) {
      bitmap.close();
      removeEntry(
        entry.id,
        `${entry.file.name} is ${width} × ${height} pixels; ` +
        `the limit is ${+(maxPixels / 1e6).toFixed(1)} megapixels.`
      );
      return;
    }
    const scale = Math.min(1, PREVIEW_SIZE / Math.max(width, height));
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    canvas.className = 'preview-image';
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `Preview of ${entry.file.name}`);
    canvas.dataset.naturalWidth = String(width);
    canvas.dataset.naturalHeight = String(height);
    canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    holder.replaceChildren(canvas);
  }

  function render() {
    const items = chosen.slice(0, PREVIEW_LIMIT).map((entry) => {
      const item = document.createElement('li');
      item.className = 'preview';

      const holder = document.createElement('div');
      holder.className = 'preview-frame';
      const loading = document.createElement('span');
      loading.className = 'preview-placeholder';
      loading.textContent = 'Loading…';
      holder.append(loading);

      const name = document.createElement('span');
      name.className = 'preview-name';
      name.textContent = entry.file.name;

      const size = document.createElement('span');
      size.className = 'preview-size';
      size.textContent = formatBytes(entry.file.size);

      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'button-small button-small-danger';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove ${entry.file.name}`);
      remove.addEventListener('click', () => removeEntry(entry.id));

      item.append(holder, name, size, remove);
      drawPreview(entry, holder);
      return item;
    });
    if (chosen.length > PREVIEW_LIMIT) {
      const more = document.createElement('li');
      more.className = 'preview-more';
      more.textContent = `…and ${plural(chosen.length - PREVIEW_LIMIT, 'more photo')} (${chosen.length} in all).`;
      items.push(more);
    }
    previews.replaceChildren(...items);
  }

  function openPicker() {
    // A hidden (display: none) file input still opens the picker when clicked.
    if (!busy) input.click();
  }

  function hasFiles(event) {
    const types = event.dataTransfer && event.dataTransfer.types;
    return Boolean(types) && Array.from(types).includes('Files');
  }

  function setBusy(state, text) {
    busy = state;
    if (progress) progress.hidden = !state;
    if (button) button.disabled = state;
    if (chooseButton) chooseButton.disabled = state;
    form.setAttribute('aria-busy', String(state));
    for (const remove of previews.querySelectorAll('button')) remove.disabled = state;
    if (text) setProgress(null, text);
  }

  /** Show upload progress (0-100), or an indeterminate bar when percent is null. */
  function setProgress(percent, text) {
    if (progressBar) {
      if (percent === null) progressBar.removeAttribute('value');
      else progressBar.value = percent;
    }
    if (progressText) progressText.textContent = text;
  }

  /** The error message of a JSON error envelope, or a fallback. */
  function errorMessage(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (err) {
      // not JSON: fall through
    }
    if (xhr.status === 413) return 'The upload is too large.';
    return `The upload failed (HTTP ${xhr.status}). Try again.`;
  }

  /** Send the form in the background, reporting upload progress, then go to
   * the results; errors stay on this page with the chosen photos. */
  function sendInBackground(files) {
    const data = new FormData(form);
    data.delete('image');
    for (const file of files) data.append('image', file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((event.loaded / event.total) * 100);
      setProgress(percent, `Uploading… ${percent}%`);
    });
    xhr.upload.addEventListener('load', () => {
      setProgress(null, `Classifying ${plural(files.length, 'photo')}…`);
      announce('Upload complete. Classifying…');
    });
    xhr.addEventListener('load', () => {
      const type = xhr.getResponseHeader('Content-Type') || '';
      if (xhr.status === 200 && type.startsWith('application/json')) {
        const body = JSON.parse(xhr.responseText);
        setProgress(100, 'Done. Opening the results…');
        announce('Done. Opening the results.');
        window.location.assign(body.redirect);
        return;
      }
      if (!type.startsWith('application/json') && xhr.responseURL) {
        // Not an answer from the upload view (e.g. signed out meanwhile).
        window.location.assign(xhr.responseURL);
        return;
      }
      setBusy(false);
      showErrors([errorMessage(xhr)]);
      if (errorBox) errorBox.focus();
    });
    xhr.addEventListener('error', () => {
      setBusy(false);
      showErrors(['The upload did not reach the server, or the server closed the connection. Check your connection and try again.']);
      if (errorBox) errorBox.focus();
    });
    setBusy(true);
    setProgress(0, 'Uploading… 0%');
    announce(`Uploading ${plural(files.length, 'photo')}…`);
    xhr.send(data);
  }

  // Submitting: check the whole request first (the server checks again).
  form.addEventListener('submit', (event) => {
    if (busy) {
      event.preventDefault();
      return;
    }
    const files = canSync ? chosen.map((entry) => entry.file) : Array.from(input.files || []);
    if (canSync && needsBatch(files)) {
      event.preventDefault();
      showErrors([]);
      sendBatch(files);
      return;
    }
    const errors = problemsWithRequest(files);
    if (errors.length) {
      event.preventDefault();
      showErrors(errors);
      if (errorBox) errorBox.focus();
      return;
    }
    showErrors([]);
    if (typeof XMLHttpRequest === 'undefined' || typeof FormData === 'undefined') {
      setBusy(true, 'Uploading and classifying…');
      return; // a plain form post
    }
    event.preventDefault();
    sendInBackground(files);
  });

  // ------------------------------------------------------------------------
  // Batches: many photos, a request at a time

  const requestBytes = (files) => files.reduce((sum, file) => sum + file.size + PART_OVERHEAD, 0);

  /** More than one request's worth, or a folder: send as a batch. */
  function needsBatch(files) {
    if (!files.length) return false;
    return Boolean(folderName) || files.length > maxFiles || (files.length > 1 && requestBytes(files) > maxBytes);
  }

  /** Requests of at most maxFiles photos and maxBytes each, in order. */
  function chunksOf(files) {
    const chunks = [];
    let current = [];
    for (const file of files) {
      if (current.length && (current.length >= maxFiles || requestBytes(current.concat(file)) > maxBytes)) {
        chunks.push(current);
        current = [];
      }
      current.push(file);
    }
    if (current.length) chunks.push(current);
    return chunks;
  }

  function csrfToken() {
    const field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : '';
  }

  /** Milliseconds to wait from a Retry-After header (seconds or a date). */
  function retryDelay(response, attempt) {
    const header = (response && response.headers.get('Retry-After')) || '';
    let ms = NaN;
    if (/^\d+$/.test(header.trim())) ms = Number(header.trim()) * 1000;
    else if (header) ms = Date.parse(header) - Date.now();
    if (!Number.isFinite(ms)) ms = Math.min(30000, 1000 * 2 ** attempt);
    return Math.min(Math.max(ms, 250), 120000);
  }

  /** Wait ``ms``; only Cancel ends the wait sooner (Resume does not, so a
   * Retry-After is always honoured). */
  function sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (run.wake === done) run.wake = null;
        resolve();
      }
      run.wake = done;
    });
  }

  /** Hold the next request while paused; Resume or Cancel lets it go. */
  async function whilePaused() {
    while (run.paused && !run.cancelled) {
      await new Promise((resolve) => { run.resume = resolve; });
    }
  }

  function release(name) {
    const wake = run[name];
    run[name] = null;
    if (wake) wake();
  }

  async function createBatch() {
    const name = (batchName && batchName.value.trim()) || folderName;
    const response = await fetch(batchesUrl, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': csrfToken() },
      body: JSON.stringify({ name }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    return body;
  }

  /** Send one request's photos until it is answered. Returns {ok}, {refused,
   * message} (the server refused an image: nothing of the request was
   * stored), {fatal, message} or {cancelled}. */
  async function sendChunk(chunk, batchId) {
    let waits = 0;
    let failures = 0;
    for (;;) {
      await whilePaused();
      if (run.cancelled) return { cancelled: true };
      const data = new FormData();
      for (const file of chunk) data.append('image', file, file.name);
      data.append('batch_id', String(batchId));
      run.controller = new AbortController();
      let response;
      try {
        response = await fetch(predictUrl, {
          method: 'POST',
          body: data,
          credentials: 'same-origin',
          headers: { Accept: 'application/json', 'X-CSRFToken': csrfToken() },
          signal: run.controller.signal,
        });
      } catch (err) {
        if (run.cancelled) return { cancelled: true };
        failures += 1;
        if (failures > NETWORK_RETRIES) {
          return { fatal: true, message: 'The server could not be reached. Check your connection and try again.' };
        }
        await sleep(retryDelay(null, failures));
        continue;
      }
      if (response.ok) {
        await response.json().catch(() => ({}));
        return { ok: true };
      }
      if (response.status === 429 || response.status === 503) {
        waits += 1;
        run.waits += 1;
        if (waits > MAX_WAITS) return { fatal: true, message: 'The server stayed busy; try again later.' };
        const ms = retryDelay(response, waits);
        showBatchProgress(`Server busy: waiting ${Math.ceil(ms / 1000)} s as it asks…`);
        await sleep(ms);
        continue;
      }
      const body = await response.json().catch(() => ({}));
      const error = body.error || {};
      const message = error.message || `HTTP ${response.status}`;
      const imageProblem = [400, 413, 415].includes(response.status) &&
        !['csrf_failed', 'invalid_batch_id', 'too_many_files', 'payload_too_large'].includes(error.code);
      if (imageProblem && error.code) return { refused: true, message };
      return { fatal: true, message };
    }
  }

  function showBatchProgress(note) {
    const { total, done } = run;
    const handled = done + run.skipped.length;
    // Time spent paused does not count against the rate.
    const now = performance.now();
    const pausedMs = run.pausedMs + (run.paused ? now - run.pausedAt : 0);
    const seconds = (now - run.started - pausedMs) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const left = rate > 0 ? Math.ceil((total - handled) / rate) : null;
    let text = `${done} of ${total} photos classified`;
    if (run.skipped.length) text += `, ${run.skipped.length} skipped`;
    if (rate > 0) text += ` · ${rate.toFixed(1)} photos/s`;
    if (left !== null && handled < total) text += ` · about ${left} s left`;
    if (run.paused) text += ' · paused';
    if (note) text += ` · ${note}`;
    setProgress(total ? Math.round((handled / total) * 100) : 100, text);
  }

  function showSummary(batch, stopped) {
    const { total, done } = run;
    const parts = [`${plural(done, 'photo')} of ${total} classified`];
    if (run.skipped.length) parts.push(`${run.skipped.length} skipped`);
    if (run.waits) parts.push(`${plural(run.waits, 'wait')} for a busy server, sent again`);
    let text = parts.join(', ') + '.';
    if (stopped) text = `${stopped} ${text}`;
    const heading = document.getElementById('upload-summary-heading');
    if (heading) heading.textContent = stopped ? 'Upload stopped' : 'Upload finished';
    document.getElementById('upload-summary-text').textContent = text;
    const list = document.getElementById('upload-summary-skipped');
    list.replaceChildren(...run.skipped.map(({ name, reason }) => {
      const item = document.createElement('li');
      item.textContent = reason.startsWith(name) ? reason : `${name}: ${reason}`;
      return item;
    }));
    const link = document.getElementById('upload-summary-link');
    if (batch) {
      link.href = batch.url;
      link.textContent = `Open the batch “${batch.name}”`;
      link.hidden = false;
    } else {
      link.hidden = true;
    }
    summary.hidden = false;
    summary.focus();
    announce(`${heading ? heading.textContent : 'Upload finished'}. ${text}`);
  }

  function endBatch() {
    if (batchControls) batchControls.hidden = true;
    chosen = [];
    skipped = [];
    folderName = '';
    sync();
    render();
    setBusy(false);
  }

  async function sendBatch(files) {
    run = {
      total: files.length + skipped.length, done: 0, skipped: skipped.slice(), waits: 0,
      started: performance.now(), paused: false, cancelled: false, wake: null, resume: null,
      controller: null, pausedAt: 0, pausedMs: 0,
    };
    if (summary) summary.hidden = true;
    setBusy(true);
    if (batchControls) batchControls.hidden = false;
    if (pauseButton) {
      pauseButton.disabled = false;
      pauseButton.textContent = 'Pause';
      pauseButton.setAttribute('aria-pressed', 'false');
    }
    if (cancelButton) cancelButton.disabled = false;
    announce(`Sending ${plural(files.length, 'photo')}, ${maxFiles} at a time…`);
    let batch = null;
    try {
      batch = await createBatch();
    } catch (err) {
      endBatch();
      showErrors([`The batch could not be created: ${err.message}`]);
      if (errorBox) errorBox.focus();
      return;
    }
    const queue = chunksOf(files);
    let stopped = '';
    showBatchProgress();
    while (queue.length) {
      const chunk = queue.shift();
      const outcome = await sendChunk(chunk, batch.id);
      if (outcome.cancelled) {
        stopped = 'Cancelled: the photos sent before stay in the batch.';
        break;
      }
      if (outcome.fatal) {
        stopped = `Stopped: ${outcome.message}`;
        break;
      }
      if (outcome.refused && chunk.length > 1) {
        // One photo refuses its whole request: send those one by one.
        queue.unshift(...chunk.map((file) => [file]));
      } else if (outcome.refused) {
        run.skipped.push({ name: chunk[0].name, reason: outcome.message });
      } else {
        run.done += chunk.length;
      }
      showBatchProgress();
    }
    endBatch();
    showSummary(batch, stopped);
    run = null;
  }

  if (pauseButton) {
    pauseButton.addEventListener('click', () => {
      if (!run) return;
      run.paused = !run.paused;
      if (run.paused) run.pausedAt = performance.now();
      else run.pausedMs += performance.now() - run.pausedAt;
      pauseButton.textContent = run.paused ? 'Resume' : 'Pause';
      pauseButton.setAttribute('aria-pressed', String(run.paused));
      announce(run.paused ? 'Paused after the current request.' : 'Resumed.');
      if (!run.paused) release('resume');
      showBatchProgress();
    });
  }
  if (cancelButton) {
    cancelButton.addEventListener('click', () => {
      if (!run) return;
      run.cancelled = true;
      cancelButton.disabled = true;
      if (run.controller) run.controller.abort();
      release('wake');
      release('resume');
    });
  }

  // Coming back with the browser's Back button restores a page frozen mid-submit.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) setBusy(false);
  });

  if (!canSync) {
    // Old browser: keep the native input, but still report bad choices early.
    input.addEventListener('change', () => {
      showErrors(Array.from(input.files || []).map(problemWith).filter(Boolean));
    });
    return;
  }

  // A real button opens the picker (keyboard and screen readers); the whole
  // zone takes clicks and drops. The native input stays in the form, hidden,
  // and carries the files.
  form.classList.add('is-enhanced');
  if (chooseButton) {
    chooseButton.hidden = false;
    chooseButton.addEventListener('click', openPicker);
    if (label) label.hidden = true;
    input.hidden = true;
  }

  // Files already in the input (e.g. restored by the browser) join the list.
  if (input.files && input.files.length) addFiles(Array.from(input.files));

  input.addEventListener('change', () => {
    // The picker replaces the input's files; add them to what was chosen.
    addFiles(Array.from(input.files || []));
  });

  zone.addEventListener('click', (event) => {
    // The button, label and input open the picker by themselves.
    if (event.target.closest('label, input, button, a')) return;
    openPicker();
  });

  zone.addEventListener('dragenter', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    zone.classList.add('drag-over');
  });

  zone.addEventListener('dragover', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    zone.classList.add('drag-over');
  });

  zone.addEventListener('dragleave', (event) => {
    if (event.relatedTarget && zone.contains(event.relatedTarget)) return;
    zone.classList.remove('drag-over');
  });

  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('drag-over');
    if (!event.dataTransfer) return;
    // Entries must be taken during the event: the list is emptied after it.
    const entries = Array.from(event.dataTransfer.items || [])
      .map((item) => (item.kind === 'file' && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
    if (entries.some((entry) => entry && entry.isDirectory)) {
      const folder = entries.find((entry) => entry && entry.isDirectory);
      announce('Reading the folder…');
      Promise.all(entries.filter(Boolean).map(filesOf)).then((lists) => {
        if (!folderName) folderName = folder.name;
        addFiles(lists.flat());
      });
    } else if (event.dataTransfer.files.length) {
      addFiles(Array.from(event.dataTransfer.files));
    }
  });

  /** Every file under a dropped entry (folders read to the end, in order). */
  async function filesOf(entry) {
    if (entry.isFile) {
      return new Promise((resolve) => entry.file((file) => resolve([file]), () => resolve([])));
    }
    const reader = entry.createReader();
    const children = [];
    for (;;) {
      // readEntries answers in pieces (100 at a time in Chromium) until empty.
      const part = await new Promise((resolve) => reader.readEntries(resolve, () => resolve([])));
      if (!part.length) break;
      children.push(...part);
    }
    children.sort((a, b) => a.name.localeCompare(b.name));
    const lists = await Promise.all(children.map(filesOf));
    return lists.flat();
  }

  if (folderInput) {
    folderInput.addEventListener('change', () => {
      const files = Array.from(folderInput.files || []);
      if (!files.length) return;
      const path = files[0].webkitRelativePath || '';
      if (!folderName) folderName = path.split('/')[0] || 'Folder';
      addFiles(files);
    });
  }
  if (cameraInput) {
    cameraInput.addEventListener('change', () => addFiles(Array.from(cameraInput.files || [])));
  }

  // A photo dropped beside the zone must not replace the page with the image.
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (event) => {
      if (hasFiles(event) && !zone.contains(event.target)) {
        event.preventDefault();
        if (event.dataTransfer) event.dataTransfer.dropEffect = 'none';
      }
    });
  }

  document.addEventListener('paste', (event) => {
    const data = event.clipboardData;
    if (!data) return;
    const files = [];
    for (const item of Array.from(data.items || [])) {
      if (item.kind !== 'file') continue;
      const file = item.getAsFile();
      if (file) files.push(file);
    }
    if (!files.length) return;
    event.preventDefault();
    // Pasted images all arrive as "image.png": give each its own name.
    const named = files.map((file) => {
      pasteCount += 1;
      const extension = (typeOf(file).split('/')[1] || 'png').replace('jpeg', 'jpg');
      const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
      return new File([file], `pasted-${stamp}-${pasteCount}.${extension}`, {
        type: file.type,
        lastModified: Date.now(),
      });
    });
    addFiles(named);
  });
})();
