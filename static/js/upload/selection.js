/*
 * The photos chosen so far, in the order they came, from every source (picker,
 * drop, paste, folder, camera): several selections add up, and each file is
 * checked as it joins. The list is copied back into <input type="file"> (via
 * DataTransfer) so that a plain submit still sends exactly these photos.
 */
import { plural, problemWith } from './checks.js';
import { announce, isBusy, showErrors } from './feedback.js';
import { cameraInput, folderInput, input, limits, previews, zone } from './page.js';
import { render } from './previews.js';

// A bound on one selection, far above any folder people send at once.
const MAX_CHOSEN = 5000;

/** @type {{file: File, id: number}[]} */
let chosen = [];
let nextId = 0;
// The folder a selection came from, for the batch's default name.
let folderName = '';
// Files a folder held that are not photos: [{name, reason}].
let skipped = [];

/** The chosen photos, in order. */
export const chosenFiles = () => chosen.map((entry) => entry.file);
/** What was left out of the selection, and why: [{name, reason}]. */
export const skippedFiles = () => skipped.slice();
/** The name of the folder the photos came from, or ''. */
export const folder = () => folderName;

/** Remember the folder's name; the first folder chosen names the batch. */
export function cameFromFolder(name) {
  if (!folderName) folderName = name;
}

const sameFile = (a, b) => a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;

export function addFiles(files) {
  if (isBusy()) return;
  const errors = [];
  let added = 0;
  for (const file of files) {
    const problem = problemWith(file, limits);
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
  update();
  // A folder may hold many other files: list ten, count the rest.
  const shown = errors.slice(0, 10);
  if (errors.length > shown.length) shown.push(`…and ${errors.length - shown.length} more skipped.`);
  showErrors(shown);
  if (added) announce(`${plural(added, 'photo')} added; ${chosen.length} chosen.`);
}

/** Take a photo out: by its Remove button, or with ``reason`` when a check
 * found it unacceptable (then the reason is shown and focus stays put). */
function removeEntry(id, reason) {
  const index = chosen.findIndex((entry) => entry.id === id);
  if (index < 0) return;
  const [entry] = chosen.splice(index, 1);
  update();
  if (reason) {
    showErrors([reason]);
  } else {
    showErrors([]);
    announce(`${entry.file.name} removed; ${chosen.length} chosen.`);
    // Focus goes to the next Remove button, so that removing several is easy.
    const buttons = previews.querySelectorAll('button');
    const next = buttons[Math.min(index, buttons.length - 1)];
    (next || zone).focus();
  }
}

/** Start again with nothing chosen (after a batch was sent). */
export function clear() {
  chosen = [];
  skipped = [];
  folderName = '';
  update();
}

function update() {
  sync();
  render(chosen, removeEntry);
}

/** Copy the chosen files into the file input, so a normal submit sends them. */
function sync() {
  const dt = new DataTransfer();
  for (const entry of chosen) dt.items.add(entry.file);
  input.files = dt.files;
  // The folder and camera inputs' files are in the list now: not twice.
  for (const other of [folderInput, cameraInput]) if (other) other.value = '';
}
