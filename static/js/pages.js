/*
 * Snapclass history and result pages: small enhancements, all optional.
 *
 * History: "select all on this page", a live count of the selection, and a
 * confirmation before several predictions are deleted (without this script
 * the checkboxes and the Delete selected button work as a plain form).
 * Result: a Copy button for the public link.
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

  enhanceBulkDelete();
  enhanceCopyButtons();
})();
