/*
 * One upload (as many photos as one request may carry), sent in the
 * background: a progress bar while the photos go up, a busy state while the
 * model works, then the results page. Errors stay on this page with the
 * chosen photos, so nothing has to be chosen again.
 */
import { plural } from './checks.js';
import { announce, setBusy, setProgress, showErrorsAndFocus } from './feedback.js';
import { postWithProgress, withPhotos } from './net.js';
import { form } from './page.js';

/** The error message of a JSON error envelope, or a fallback. */
function errorMessage(answer) {
  try {
    const body = JSON.parse(answer.text);
    if (body && body.error && body.error.message) return body.error.message;
  } catch (err) {
    // not JSON: fall through
  }
  if (answer.status === 413) return 'The upload is too large.';
  return `The upload failed (HTTP ${answer.status}). Try again.`;
}

function onAnswer(answer) {
  if (answer.status === 200 && answer.type.startsWith('application/json')) {
    const body = JSON.parse(answer.text);
    setProgress(100, 'Done. Opening the results…');
    announce('Done. Opening the results.');
    window.location.assign(body.redirect);
    return;
  }
  if (!answer.type.startsWith('application/json') && answer.url) {
    // Not an answer from the upload view (e.g. signed out meanwhile).
    window.location.assign(answer.url);
    return;
  }
  setBusy(false);
  showErrorsAndFocus([errorMessage(answer)]);
}

function onNoAnswer() {
  setBusy(false);
  showErrorsAndFocus([
    'The upload did not reach the server, or the server closed the connection. Check your connection and try again.',
  ]);
}

/** Send the form with ``files`` as its photos, then go to the results. */
export function sendInBackground(files) {
  // The whole form (its CSRF token, the batch name) as a plain submit sends it.
  const data = withPhotos(files, new FormData(form));
  setBusy(true);
  setProgress(0, 'Uploading… 0%');
  announce(`Uploading ${plural(files.length, 'photo')}…`);
  postWithProgress(form.action, data, {
    onProgress(loaded, total) {
      const percent = Math.round((loaded / total) * 100);
      setProgress(percent, `Uploading… ${percent}%`);
    },
    onSent() {
      setProgress(null, `Classifying ${plural(files.length, 'photo')}…`);
      announce('Upload complete. Classifying…');
    },
  }).then(onAnswer, onNoAnswer);
}
