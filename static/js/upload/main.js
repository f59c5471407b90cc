/*
 * Snapclass upload page: progressive enhancement for #upload-form.
 *
 * Without JavaScript the page is a plain multipart form, and so it stays in a
 * browser that does not load module scripts. With it, photos can be dropped
 * onto the drop zone or pasted, several selections add up, each file gets a
 * preview with a Remove button, files are checked against the server's limits
 * before upload (the server still decides), and the upload runs in the
 * background with a progress bar. More photos than one request may carry, or
 * a folder, are sent as a named batch a request at a time.
 *
 * The modules, each read on its own:
 *   page.js          the page's elements and the server's limits
 *   feedback.js      status line, problems, progress bar, busy state
 *   checks.js        what the server accepts, checked before sending
 *   selection.js     the chosen photos, copied back into the file input
 *   previews.js      a preview of each, drawn on a canvas
 *   picking.js       picker, drop zone, paste, folder and camera inputs
 *   folder-walk.js   the files inside a dropped folder
 *   net.js           the requests: bodies, headers, sending
 *   single.js        one upload with a progress bar
 *   batch.js         a batch on the page: progress, Pause, Cancel, summary
 *   batch-sender.js  a batch's requests: retry on 429/503, pause, cancel
 * Imports go one way (this module at the top, page.js at the bottom): no cycle.
 */
import { enhanceBatchControls, sendBatch } from './batch.js';
import { needsBatch, problemWith, problemsWithRequest } from './checks.js';
import { isBusy, setBusy, showErrors, showErrorsAndFocus } from './feedback.js';
import { form, input, limits, previews, zone } from './page.js';
import { enhancePicking } from './picking.js';
import { chosenFiles, folder } from './selection.js';
import { sendInBackground } from './single.js';

// The list of chosen photos lives in JavaScript and is copied into the file
// input with a DataTransfer; a browser that cannot build one keeps the
// native input as it is.
const canSync = (() => {
  try {
    const dt = new DataTransfer();
    dt.items.add(new File([''], 'probe.txt', { type: 'text/plain' }));
    return dt.files.length === 1;
  } catch (err) {
    return false;
  }
})();

// Submitting: check the whole request first (the server checks again).
function onSubmit(event) {
  if (isBusy()) {
    event.preventDefault();
    return;
  }
  const files = canSync ? chosenFiles() : Array.from(input.files || []);
  if (canSync && needsBatch(files, limits, Boolean(folder()))) {
    event.preventDefault();
    showErrors([]);
    sendBatch(files);
    return;
  }
  const errors = problemsWithRequest(files, limits);
  if (errors.length) {
    event.preventDefault();
    showErrorsAndFocus(errors);
    return;
  }
  showErrors([]);
  if (typeof XMLHttpRequest === 'undefined' || typeof FormData === 'undefined') {
    setBusy(true, 'Uploading and classifying…');
    return; // a plain form post
  }
  event.preventDefault();
  sendInBackground(files);
}

function start() {
  if (!form || !input || !zone || !previews) return;
  form.addEventListener('submit', onSubmit);
  enhanceBatchControls();

  // Coming back with the browser's Back button restores a page frozen mid-submit.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) setBusy(false);
  });

  if (canSync) {
    enhancePicking();
  } else {
    // Old browser: keep the native input, but still report bad choices early.
    input.addEventListener('change', () => {
      showErrors(Array.from(input.files || []).map((file) => problemWith(file, limits)).filter(Boolean));
    });
  }
}

start();
