/*
 * A preview of each chosen photo, with its name, its size and a Remove button.
 *
 * Previews are drawn on a <canvas> from createImageBitmap(): no blob: or data:
 * URLs, so a Content-Security-Policy of default-src 'self' holds, and the
 * browser applies the photo's EXIF orientation as the server does. Drawing is
 * also where the photo's pixel count is first known, so the pixel limit is
 * checked here.
 */
import { formatBytes, plural } from './checks.js';
import { limits, previews } from './page.js';

const PREVIEW_SIZE = 240;
// Previews drawn at most; a folder of hundreds shows these and a count.
const PREVIEW_LIMIT = 24;

/** Draw a preview of the photo (EXIF orientation applied) and check its size;
 * a photo over the pixel limit is removed with ``remove(id, reason)``. */
async function drawPreview(entry, holder, remove) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(entry.file, { imageOrientation: 'from-image' });
  } catch (err) {
    // The browser cannot decode it; the server will say whether it can.
    const placeholder = document.createElement('span');
    placeholder.className = 'preview-placeholder';
    placeholder.textContent = 'No preview';
    holder.replaceChildren(placeholder);
    return;
  }
  const { width, height } = bitmap;
  if (width * height > limits.maxPixels) {
    bitmap.close();
    remove(
      entry.id,
      `${entry.file.name} is ${width} × ${height} pixels; ` +
      `the limit is ${+(limits.maxPixels / 1e6).toFixed(1)} megapixels.`
    );
    return;
  }
  const scale = Math.min(1, PREVIEW_SIZE / Math.max(width, height));
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  canvas.className = 'preview-image';
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `Preview of ${entry.file.name}`);
  canvas.dataset.naturalWidth = String(width);
  canvas.dataset.naturalHeight = String(height);
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  holder.replaceChildren(canvas);
}

/** Show ``entries`` ({file, id}); their Remove buttons call ``remove(id)``. */
export function render(entries, remove) {
  const items = entries.slice(0, PREVIEW_LIMIT).map((entry) => {
    const item = document.createElement('li');
    item.className = 'preview';

    const holder = document.createElement('div');
    holder.className = 'preview-frame';
    const loading = document.createElement('span');
    loading.className = 'preview-placeholder';
    loading.textContent = 'Loading…';
    holder.append(loading);

    const name = document.createElement('span');
    name.className = 'preview-name';
    name.textContent = entry.file.name;

    const size = document.createElement('span');
    size.className = 'preview-size';
    size.textContent = formatBytes(entry.file.size);

    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button-small button-small-danger';
    button.textContent = 'Remove';
    button.setAttribute('aria-label', `Remove ${entry.file.name}`);
    button.addEventListener('click', () => remove(entry.id));

    item.append(holder, name, size, button);
    drawPreview(entry, holder, remove);
    return item;
  });
  if (entries.length > PREVIEW_LIMIT) {
    const more = document.createElement('li');
    more.className = 'preview-more';
    more.textContent = `…and ${plural(entries.length - PREVIEW_LIMIT, 'more photo')} (${entries.length} in all).`;
    items.push(more);
  }
  previews.replaceChildren(...items);
}
