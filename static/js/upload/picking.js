/*
 * Every way of choosing photos: the picker (a real button opens it, for the
 * keyboard and screen readers), a click anywhere on the drop zone, drag and
 * drop of files or a folder, pasting, the folder picker and the camera. Each
 * adds to the selection; none sends anything.
 */
import { typeOf } from './checks.js';
import { announce, isBusy } from './feedback.js';
import { droppedEntries, filesOf } from './folder-walk.js';
import { cameraInput, chooseButton, folderInput, form, input, label, zone } from './page.js';
import { addFiles, cameFromFolder } from './selection.js';

let pasteCount = 0;

function openPicker() {
  // A hidden (display: none) file input still opens the picker when clicked.
  if (!isBusy()) input.click();
}

function hasFiles(event) {
  const types = event.dataTransfer && event.dataTransfer.types;
  return Boolean(types) && Array.from(types).includes('Files');
}

/** Turn the plain file input into the enhanced drop zone. */
export function enhancePicking() {
  // The native input stays in the form, hidden, and carries the files.
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

  enhanceDropping();

  if (folderInput) {
    folderInput.addEventListener('change', () => {
      const files = Array.from(folderInput.files || []);
      if (!files.length) return;
      const path = files[0].webkitRelativePath || '';
      cameFromFolder(path.split('/')[0] || 'Folder');
      addFiles(files);
    });
  }
  if (cameraInput) {
    cameraInput.addEventListener('change', () => addFiles(Array.from(cameraInput.files || [])));
  }

  document.addEventListener('paste', onPaste);
}

function enhanceDropping() {
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
    const entries = droppedEntries(event.dataTransfer);
    const folder = entries.find((entry) => entry && entry.isDirectory);
    if (folder) {
      announce('Reading the folder…');
      Promise.all(entries.filter(Boolean).map(filesOf)).then((lists) => {
        cameFromFolder(folder.name);
        addFiles(lists.flat());
      });
    } else if (event.dataTransfer.files.length) {
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
}

function onPaste(event) {
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
}
