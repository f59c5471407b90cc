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

  const positiveInt = (value, fallback) => {
    const n = Number.parseInt(value, 10);
    return Number.isFinite(n) && n > 0 ? n : fallback;
  };
  const maxBytes = positiveInt(form.dataset.maxBytes, 10 * 1024 * 1024);
  const maxFiles = positiveInt(form.dataset.maxFiles, 16);
  const maxPixels = positiveInt(form.dataset.maxPixels, 40000000);

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
      } else if (chosen.some((entry) => sameFile(entry.file, file))) {
        continue; // chosen twice: keep one copy
      } else if (chosen.length >= maxFiles) {
        errors.push(`At most ${maxFiles} photos per upload: ${file.name} was left out.`);
      } else {
        chosen.push({ file, id: nextId++ });
        added += 1;
      }
    }
    sync();
    render();
    showErrors(errors);
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
    const items = chosen.map((entry) => {
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
    if (event.dataTransfer && event.dataTransfer.files.length) {
      addFiles(Array.from(event.dataTransfer.files));
    }
  });

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
