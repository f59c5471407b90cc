/*
 * What the upload page tells the person: a status line for screen readers,
 * the list of problems, the progress bar, and the busy state that holds the
 * controls still while an upload runs.
 */
import {
  button, chooseButton, errorBox, form, previews, progress, progressBar, progressText, statusBox,
} from './page.js';

let busy = false;

/** Whether an upload is running (choosing more photos waits until it ends). */
export const isBusy = () => busy;

export function announce(message) {
  if (statusBox) statusBox.textContent = message;
}

export function showErrors(messages) {
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

/** Problems the person must read before anything else: shown and focused. */
export function showErrorsAndFocus(messages) {
  showErrors(messages);
  if (errorBox) errorBox.focus();
}

export function setBusy(state, text) {
  busy = state;
  if (progress) progress.hidden = !state;
  if (button) button.disabled = state;
  if (chooseButton) chooseButton.disabled = state;
  form.setAttribute('aria-busy', String(state));
  for (const remove of previews.querySelectorAll('button')) remove.disabled = state;
  if (text) setProgress(null, text);
}

/** Show upload progress (0-100), or an indeterminate bar when percent is null. */
export function setProgress(percent, text) {
  if (progressBar) {
    if (percent === null) progressBar.removeAttribute('value');
    else progressBar.value = percent;
  }
  if (progressText) progressText.textContent = text;
}
