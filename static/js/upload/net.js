/*
 * Every request the upload page sends starts here: the multipart body that
 * carries photos, the headers (the answer wanted as JSON, the CSRF token), and
 * the two ways of sending. One upload goes with XMLHttpRequest, the only API
 * that reports upload progress; the requests of a batch go with fetch, which
 * can be aborted. What every request needs (a key to make a retry safe, a
 * photo made smaller before it leaves) belongs in this module.
 */
import { form } from './page.js';

/** The form's CSRF token (Flask-WTF), for requests sent without the form. */
export function csrfToken() {
  const field = form.querySelector('input[name="csrf_token"]');
  return field ? field.value : '';
}

/** ``data`` (a FormData) with the photos as its "image" fields, in order.
 * Any "image" fields it had (the form's own file inputs) are replaced. */
export function withPhotos(files, data = new FormData()) {
  data.delete('image');
  for (const file of files) data.append('image', file, file.name);
  return data;
}

/** POST ``data`` and report the upload's progress. Resolves with the answer
 * ({status, type, text, url}) once it has come, whatever its status; rejects
 * when none came (the network, or the server closed the connection).
 * ``onProgress(loaded, total)`` follows the upload, ``onSent()`` says that
 * the last byte is out and the server is at work. */
export function postWithProgress(url, data, { onProgress, onSent }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    // The form's own csrf_token field is in the body: no header needed.
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.upload.addEventListener('load', onSent);
    xhr.addEventListener('load', () => resolve({
      status: xhr.status,
      type: xhr.getResponseHeader('Content-Type') || '',
      text: xhr.responseText,
      url: xhr.responseURL,
    }));
    xhr.addEventListener('error', () => reject(new Error('network')));
    xhr.send(data);
  });
}

/** POST ``data`` with fetch; ``signal`` aborts it. Rejects as fetch does. */
export function post(url, data, { signal } = {}) {
  return fetch(url, {
    method: 'POST',
    body: data,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRFToken': csrfToken() },
    signal,
  });
}

/** POST ``payload`` as JSON; the answer's JSON body, or an Error with the
 * message of the API's error envelope. */
export async function postJSON(url, payload) {
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': csrfToken() },
    body: JSON.stringify(payload),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
  return body;
}

/** Milliseconds to wait from a Retry-After header (seconds or a date); without
 * one, a backoff that doubles with each ``attempt``. */
export function retryDelay(response, attempt) {
  const header = (response && response.headers.get('Retry-After')) || '';
  let ms = NaN;
  if (/^\d+$/.test(header.trim())) ms = Number(header.trim()) * 1000;
  else if (header) ms = Date.parse(header) - Date.now();
  if (!Number.isFinite(ms)) ms = Math.min(30000, 1000 * 2 ** attempt);
  return Math.min(Math.max(ms, 250), 120000);
}
