/*
 * Snapclass upload page: progressive enhancement for #upload-form.
 *
 * Without this script the page is a plain multipart form. With it, photos can
 * be dropped onto the drop zone or pasted, several selections add up, each
 * file gets a preview with a Remove button, files are checked against the
 * server's limits before upload, and the chosen files are copied back into
 * the <input type="file"> (via DataTransfer) so the form still submits
 * normally.
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
  const button = document.getElementById('submit-button');

  const ALLOWED_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/bmp']);
  const TYPE_BY_EXTENSION = {
    jpg: 'image/jpeg', jpeg: 'image/jpeg', jpe: 'image/jpeg', png: 'image/png',
    webp: 'image/webp', gif: 'image/gif', bmp: 'image/bmp', dib: 'image/bmp',
  };
  const TYPE_ALIASES = { 'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg', 'image/x-ms-bmp': 'image/bmp' };
  // Room for the multipart boundaries and headers around each file.
  const PART_OVERHEAD = 512;

  const positiveInt = (value, fallback) => {
    const n = Number.parseInt(value, 10);
    return Number.isFinite(n) && n > 0 ? n : fallback;
  };
  const maxBytes = positiveInt(form.dataset.maxBytes, 10 * 1024 * 1024);
  const maxFiles = positiveInt(form.dataset.maxFiles, 16);

  const canSync = (() => {
    try {
      const dt = new DataTransfer();
      dt.items.add(new File([''], 'probe.txt', { type: 'text/plain' }));
      return dt.files.length === 1;
    } catch (err) {
      return false;
    }
  })();

  /** @type {{file: File, url: string}[]} */
  let chosen = [];
  let pasteCount = 0;

  function formatBytes(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }

  function typeOf(file) {
    const type = (file.type || '').toLowerCase();
    if (type) return TYPE_ALIASES[type] || type;
    const dot = file.name.lastIndexOf('.');
    return dot >= 0 ? TYPE_BY_EXTENSION[file.name.slice(dot + 1).toLowerCase()] || '' : '';
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

  const sameFile = (a, b) => a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;

  function addFiles(files) {
    const errors = [];
    for (const file of files) {
      const problem = problemWith(file);
      if (problem) {
        errors.push(problem);
      } else if (chosen.some((entry) => sameFile(entry.file, file))) {
        continue; // chosen twice: keep one copy
      } else if (chosen.length >= maxFiles) {
        errors.push(`At most ${maxFiles} photos per upload: ${file.name} was left out.`);
      } else {
        chosen.push({ file, url: URL.createObjectURL(file) });
      }
    }
    sync();
    render();
    showErrors(errors);
  }

  function removeAt(index) {
    const [entry] = chosen.splice(index, 1);
    if (entry) URL.revokeObjectURL(entry.url);
    sync();
    render();
    showErrors([]);
    const buttons = previews.querySelectorAll('button');
    const next = buttons[Math.min(index, buttons.length - 1)];
    (next || zone).focus();
  }

  /** Copy the chosen files into the file input, so a normal submit sends them. */
  function sync() {
    const dt = new DataTransfer();
    for (const entry of chosen) dt.items.add(entry.file);
    input.files = dt.files;
  }

  function render() {
    const items = chosen.map((entry, index) => {
      const item = document.createElement('li');
      item.className = 'preview';

      const img = document.createElement('img');
      img.src = entry.url;
      img.alt = '';
      img.decoding = 'async';
      img.addEventListener('error', () => {
        const placeholder = document.createElement('span');
        placeholder.className = 'preview-placeholder';
        placeholder.textContent = 'No preview';
        img.replaceWith(placeholder);
      }, { once: true });

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
      remove.addEventListener('click', () => removeAt(index));

      item.append(img, name, size, remove);
      return item;
    });
    previews.replaceChildren(...items);
  }

  function openPicker() {
    input.click();
  }

  function hasFiles(event) {
    const types = event.dataTransfer && event.dataTransfer.types;
    return Boolean(types) && Array.from(types).includes('Files');
  }

  function setBusy(busy) {
    if (progress) progress.hidden = !busy;
    if (button) button.disabled = busy;
    form.setAttribute('aria-busy', String(busy));
  }

  // Submitting: check the whole request, then show progress. Works with or
  // without DataTransfer support, because it reads the input's files.
  form.addEventListener('submit', (event) => {
    const files = Array.from(input.files || []);
    const errors = [];
    if (!files.length) {
      errors.push('Choose at least one photo first.');
    } else {
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
    }
    if (errors.length) {
      event.preventDefault();
      showErrors(errors);
      return;
    }
    showErrors([]);
    setBusy(true);
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

  // The drop zone becomes the one keyboard control that opens the picker; the
  // native input stays in the form (hidden) and carries the files.
  form.classList.add('is-enhanced');
  zone.setAttribute('role', 'button');
  zone.tabIndex = 0;
  zone.setAttribute('aria-label', 'Choose photos to classify, or drop or paste them here');
  input.tabIndex = -1;
  input.setAttribute('aria-hidden', 'true');

  // Files already in the input (e.g. restored by the browser) join the list.
  if (input.files && input.files.length) addFiles(Array.from(input.files));

  input.addEventListener('change', () => {
    addFiles(Array.from(input.files || []));
  });

  zone.addEventListener('click', (event) => {
    // A click on the label or input opens the picker by itself.
    if (event.target.closest('label, input, button, a')) return;
    openPicker();
  });

  zone.addEventListener('keydown', (event) => {
    if (event.target !== zone) return;
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      openPicker();
    }
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
