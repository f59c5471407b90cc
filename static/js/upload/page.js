/*
 * The upload page's elements and the server's limits, looked up in one place
 * so that the other modules name what they use instead of repeating ids.
 *
 * Module scripts run after the document is parsed, so every element that the
 * template has is here. Optional ones may be null (an older template, another
 * page): the modules check before they use them.
 */

export const form = document.getElementById('upload-form');
export const input = document.getElementById('image-input');
export const zone = document.getElementById('drop-zone');
export const previews = document.getElementById('previews');

export const errorBox = document.getElementById('client-errors');
export const progress = document.getElementById('upload-progress');
export const progressBar = document.getElementById('upload-progress-bar');
export const progressText = document.getElementById('upload-progress-text');
export const statusBox = document.getElementById('upload-status');
export const button = document.getElementById('submit-button');
export const chooseButton = document.getElementById('choose-button');
export const label = zone && zone.querySelector('label');
export const folderInput = document.getElementById('folder-input');
export const cameraInput = document.getElementById('camera-input');
export const batchName = document.getElementById('batch-name');
export const batchControls = document.getElementById('batch-controls');
export const pauseButton = document.getElementById('pause-button');
export const cancelButton = document.getElementById('cancel-button');
export const summary = document.getElementById('upload-summary');

const positiveInt = (value, fallback) => {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
};

// The server's settings, written into the form by the template. They let the
// page refuse early what the server would refuse; the server still decides.
const data = form ? form.dataset : {};
export const limits = {
  maxBytes: positiveInt(data.maxBytes, 10 * 1024 * 1024),
  maxFiles: positiveInt(data.maxFiles, 16),
  maxPixels: positiveInt(data.maxPixels, 40000000),
};
export const predictUrl = data.predictUrl || '/predict';
export const batchesUrl = data.batchesUrl || '/api/batches';
