/*
 * What the server accepts, checked in the browser before anything is sent:
 * image types, sizes, and how many photos one request may carry. The server
 * checks again and has the last word; these only spare a wasted upload.
 * Nothing here touches the page. The two formatters of its messages
 * (formatBytes, plural) serve the other modules too.
 */

const ALLOWED_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/bmp']);
// Files often come without a type (dropped from some file managers, or from
// a folder): their extension says it.
const TYPE_BY_EXTENSION = {
  jpg: 'image/jpeg', jpeg: 'image/jpeg', jpe: 'image/jpeg', png: 'image/png',
  webp: 'image/webp', gif: 'image/gif', bmp: 'image/bmp', dib: 'image/bmp',
};
const TYPE_ALIASES = { 'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg', 'image/x-ms-bmp': 'image/bmp' };
// Room for the multipart boundaries and headers around each file.
const PART_OVERHEAD = 512;

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The file's image type, from what the browser says or else its extension. */
export function typeOf(file) {
  const type = (file.type || '').toLowerCase();
  if (type) return TYPE_ALIASES[type] || type;
  const dot = file.name.lastIndexOf('.');
  return dot >= 0 ? TYPE_BY_EXTENSION[file.name.slice(dot + 1).toLowerCase()] || '' : '';
}

/** Problems with one file on its own, or null when it is acceptable. */
export function problemWith(file, { maxBytes }) {
  if (!ALLOWED_TYPES.has(typeOf(file))) {
    return `${file.name}: not a supported image. Use JPEG, PNG, WebP, GIF or BMP.`;
  }
  if (file.size === 0) return `${file.name}: the file is empty.`;
  if (file.size + PART_OVERHEAD > maxBytes) {
    return `${file.name} is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`;
  }
  return null;
}

const requestBytes = (files) => files.reduce((sum, file) => sum + file.size + PART_OVERHEAD, 0);

/** Problems with the whole selection, as one request would carry it. */
export function problemsWithRequest(files, limits) {
  const { maxBytes, maxFiles } = limits;
  const errors = [];
  if (!files.length) return ['Choose at least one photo first.'];
  for (const file of files) {
    const problem = problemWith(file, limits);
    if (problem) errors.push(problem);
  }
  if (files.length > maxFiles) {
    errors.push(`At most ${maxFiles} photos per upload; you chose ${files.length}.`);
  }
  const total = requestBytes(files);
  if (files.length > 1 && total > maxBytes) {
    errors.push(
      `Together these photos are ${formatBytes(total)}, more than the ${formatBytes(maxBytes)} ` +
      'one upload may carry. Remove some and send them in a second upload.'
    );
  }
  return errors;
}

/** More than one request's worth, or a folder: send as a batch. */
export function needsBatch(files, { maxBytes, maxFiles }, fromFolder) {
  if (!files.length) return false;
  return fromFolder || files.length > maxFiles || (files.length > 1 && requestBytes(files) > maxBytes);
}

/** Requests of at most maxFiles photos and maxBytes each, in order. */
export function chunksOf(files, { maxBytes, maxFiles }) {
  const chunks = [];
  let current = [];
  for (const file of files) {
    if (current.length && (current.length >= maxFiles || requestBytes(current.concat(file)) > maxBytes)) {
      chunks.push(current);
      current = [];
    }
    current.push(file);
  }
  if (current.length) chunks.push(current);
  return chunks;
}
