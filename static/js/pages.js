/*
 * Snapclass history and result pages: small enhancements, all optional.
 *
 * History: "select all on this page", a live count of the selection, and a
 * confirmation before several predictions are deleted (without this script
 * the checkboxes and the Delete selected button work as a plain form).
 * Result: a Copy button for the public link.
 * Results: "Right?" answers are sent with fetch (X-CSRFToken), so the page
 * stays put; without this script they are plain form posts.
 */
(() => {
  'use strict';

  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

  function enhanceBulkDelete() {
    const form = document.getElementById('bulk-delete-form');
    if (!form) return;
    const boxes = Array.from(document.querySelectorAll('input.select-row'));
    const selectAll = document.getElementById('select-all');
    const wrapper = form.querySelector('.bulk-select-all');
    const count = document.getElementById('selected-count');
    const button = document.getElementById('delete-selected');

    const selected = () => boxes.filter((box) => box.checked);

    function update() {
      const n = selected().length;
      if (count) count.textContent = n ? `${plural(n, 'prediction')} selected` : '';
      if (button) button.disabled = n === 0;
      if (selectAll) {
        selectAll.checked = n > 0 && n === boxes.length;
        selectAll.indeterminate = n > 0 && n < boxes.length;
      }
    }

    if (wrapper && selectAll) {
      wrapper.hidden = false;
      selectAll.addEventListener('change', () => {
        for (const box of boxes) box.checked = selectAll.checked;
        update();
      });
    }
    for (const box of boxes) box.addEventListener('change', update);
    form.addEventListener('submit', (event) => {
      const n = selected().length;
      if (n && !window.confirm(`Delete ${plural(n, 'prediction')}? This cannot be undone.`)) {
        event.preventDefault();
      }
    });
    update();
  }

  function enhanceCopyButtons() {
    for (const button of document.querySelectorAll('[data-copy-target]')) {
      const field = document.getElementById(button.dataset.copyTarget);
      const status = document.getElementById('copy-status');
      if (!field) continue;
      button.hidden = false;
      button.addEventListener('click', async () => {
        field.select();
        let copied = false;
        try {
          if (navigator.clipboard && window.isSecureContext) {
            await navigator.clipboard.writeText(field.value);
            copied = true;
          }
        } catch (err) {
          copied = false;
        }
        if (status) {
          status.textContent = copied
            ? 'Link copied to the clipboard.'
            : 'The link is selected: press Ctrl+C (or ⌘C) to copy it.';
        }
      });
    }
  }

  function csrfToken(form) {
    const field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : '';
  }

  function showFeedback(group, body) {
    const fb = body.feedback;
    group.dataset.state = fb === null ? 'unreviewed' : fb.correct ? 'confirmed' : 'corrected';
    const status = group.querySelector('.feedback-status');
    if (status) status.textContent = body.message;
    const clear = group.querySelector('.feedback-clear');
    if (clear) clear.hidden = fb === null;
    const field = group.querySelector('input[name="label"]');
    if (field) field.value = fb && !fb.correct ? fb.label : '';
  }

  async function sendFeedback(group, form) {
    const status = group.querySelector('.feedback-status');
    const buttons = group.querySelectorAll('button');
    for (const button of buttons) button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: 'POST',
        body: new FormData(form),
        credentials: 'same-origin',
        headers: { Accept: 'application/json', 'X-CSRFToken': csrfToken(form) },
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        showFeedback(group, body);
      } else if (status) {
        status.textContent = (body.error && body.error.message) || `Not saved (HTTP ${response.status}).`;
      }
    } catch (err) {
      if (status) status.textContent = 'Not saved: the server could not be reached. Try again.';
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  }

  function enhanceFeedback() {
    for (const group of document.querySelectorAll('[data-feedback]')) {
      for (const form of group.querySelectorAll('form')) {
        form.addEventListener('submit', (event) => {
          if (typeof fetch === 'undefined') return; // a plain form post
          event.preventDefault();
          sendFeedback(group, form);
        });
      }
    }
  }

  enhanceBulkDelete();
  enhanceCopyButtons();
  enhanceFeedback();
})();
