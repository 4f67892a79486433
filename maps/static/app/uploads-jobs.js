/* /app/uploads: the jobs behind the page. The file is sent by XMLHttpRequest (for its upload
 * progress), the job is followed with GET /uploads/{id} (state and progress) until it ends, and
 * downloads are fetched with the key (a plain link would not send it) and saved from a Blob.
 */
import { api, ApiError, authHeaders, prefix } from './app.js';
import { el, number } from './uploads-preview.js';

const $ = (selector) => document.querySelector(selector);
const FINAL = new Set(['previewed', 'applied', 'rejected', 'failed', 'interrupted']);
const POLL_MS = 250;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Show the progress box: a step (announced when it changes), a fraction (null: unknown) and figures. */
export function progress(status, fraction, figures) {
  $('[data-progress-box]').hidden = false;
  const bar = $('#progress-bar');
  if (fraction === null) {
    bar.removeAttribute('value');
  } else {
    bar.value = Math.round(fraction * 100);
  }
  $('[data-progress-figures]').textContent = figures;
  const live = $('[data-progress-status]');
  if (live.textContent !== status) {
    live.textContent = status; // announced when the step changes, not on every figure
  }
}

function jobProgress(record, applying) {
  const p = record.progress || {};
  if (record.state === 'queued') {
    progress(applying ? 'Applying: waiting for its turn.' : 'Received; waiting for its turn.', null, '');
  } else if (record.state === 'running' && p.total > 1) {
    progress(`${applying ? 'Applying: checking' : 'Checking'} the rows.`, p.fraction ?? 0,
      `${number(p.done)} of ${number(p.total)} rows checked (${Math.round((p.fraction ?? 0) * 100)}%).`);
  } else if (record.state === 'running') {
    progress(applying ? 'Writing the changes.' : 'Comparing with the stored assets.', null, 'All rows checked.');
  }
}

/** Follow an upload's job until it ends; its final record. */
export async function follow(id, applying = false) {
  for (;;) {
    const record = await api(`/uploads/${id}`);
    jobProgress(record, applying);
    if (FINAL.has(record.state)) {
      return record;
    }
    await sleep(POLL_MS);
  }
}

/** POST /uploads by XMLHttpRequest, reporting the bytes sent; the created upload's record. */
export function sendForm(body) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${prefix}/uploads`);
    for (const [name, value] of Object.entries(authHeaders())) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        progress('Sending the file.', event.loaded / event.total,
          `${number(Math.round(event.loaded / 1024))} of ${number(Math.round(event.total / 1024))} KB sent.`);
      }
    };
    xhr.upload.onload = () => progress('Received; reading the file.', null, 'The file was sent.');
    xhr.onload = () => {
      let answer = {};
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (e) {
        answer = {detail: xhr.responseText || `the service answered ${xhr.status}`};
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(answer);
      } else {
        reject(new ApiError(xhr.status, answer));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, {detail: 'the file could not be sent: the connection to the service failed'}));
    xhr.send(body);
  });
}


/** Save a Blob as a file called ``name``. */
export function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el('a', {href: url, download: name, hidden: true});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

/** ``path`` of the API fetched with the key, saved as ``name``; throws an ApiError. */
export async function download(path, name) {
  const response = await fetch(`${prefix}${path}`, {headers: authHeaders({Accept: '*/*'}), cache: 'no-store'});
  if (!response.ok) {
    throw new ApiError(response.status, await response.json().catch(() => ({})));
  }
  save(await response.blob(), name);
}
