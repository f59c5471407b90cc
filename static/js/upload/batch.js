/*
 * A batch on the page: more photos than one request may carry, or a folder.
 * The batch is created first (named by the Batch name field, else the folder),
 * then BatchRun sends the photos while one progress bar counts them all
 * (done, skipped, rate, time left) and Pause and Cancel steer it. It ends
 * with a summary, the skipped files with their reasons, and a link to the
 * batch's page.
 */
import { BatchRun } from './batch-sender.js';
import { plural } from './checks.js';
import { announce, setBusy, setProgress, showErrorsAndFocus } from './feedback.js';
import { postJSON } from './net.js';
import {
  batchControls, batchName, batchesUrl, cancelButton, limits, pauseButton, predictUrl, summary,
} from './page.js';
import { clear, folder, skippedFiles } from './selection.js';

/** The batch being sent, or null. */
let run = null;

function showProgress(note) {
  const { total, done } = run;
  const handled = done + run.skipped.length;
  const rate = run.rate();
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
  clear();
  setBusy(false);
}

/** Send ``files`` (the selection) as a new batch, a request at a time. */
export async function sendBatch(files) {
  const skipped = skippedFiles();
  run = new BatchRun({
    url: predictUrl, limits, total: files.length + skipped.length, skipped, onProgress: showProgress,
  });
  if (summary) summary.hidden = true;
  setBusy(true);
  if (batchControls) batchControls.hidden = false;
  if (pauseButton) {
    pauseButton.disabled = false;
    pauseButton.textContent = 'Pause';
    pauseButton.setAttribute('aria-pressed', 'false');
  }
  if (cancelButton) cancelButton.disabled = false;
  announce(`Sending ${plural(files.length, 'photo')}, ${limits.maxFiles} at a time…`);
  let batch = null;
  try {
    batch = await postJSON(batchesUrl, { name: (batchName && batchName.value.trim()) || folder() });
  } catch (err) {
    endBatch();
    showErrorsAndFocus([`The batch could not be created: ${err.message}`]);
    return;
  }
  const stopped = await run.send(files, batch.id);
  endBatch();
  showSummary(batch, stopped);
  run = null;
}

/** Pause/Resume and Cancel act on the batch being sent. */
export function enhanceBatchControls() {
  if (pauseButton) {
    pauseButton.addEventListener('click', () => {
      if (!run) return;
      run.togglePause();
      pauseButton.textContent = run.paused ? 'Resume' : 'Pause';
      pauseButton.setAttribute('aria-pressed', String(run.paused));
      announce(run.paused ? 'Paused after the current request.' : 'Resumed.');
      showProgress();
    });
  }
  if (cancelButton) {
    cancelButton.addEventListener('click', () => {
      if (!run) return;
      run.cancel();
      cancelButton.disabled = true;
    });
  }
}
