/* /app/uploads: a borough officer sends a file as a dry run, follows its progress, reads the
 * preview (uploads-preview.js), changes the mapping and previews again, then applies it.
 *
 * The file goes to POST /uploads by XMLHttpRequest (for its upload progress), always as a dry
 * run; the job is then followed with GET /uploads/{id} (state and progress) until it ends, and
 * applied with POST /uploads/{id}/apply. The server decides who may do what; the page says it.
 */
import { api, ApiError, boroughName, caller, describe, onCaller, ready } from './app.js';
import { loadHistory as listUploads } from './uploads-history.js';
import { download, follow, progress, save, sendForm } from './uploads-jobs.js';
import {
  MAP_LIMIT, drawMap, el, hidePreview, kindLabel, mappingEdited, mappingProblems, mappingSpec, number, showPreview,
  shownRecord,
} from './uploads-preview.js';

const $ = (selector) => document.querySelector(selector);
const form = $('[data-upload-form]');
const fileInput = $('#file');
const mappingInput = $('#mapping-file');
const state = {busy: false, previewFile: null, preferMappingFile: false};

const when = (iso) => (iso ? new Date(iso).toLocaleString('en-GB', {dateStyle: 'medium', timeStyle: 'short'}) : '');

/* ---- errors: a summary at the top, the message next to its field ------------------------- */

function clearErrors() {
  $('[data-error-summary]').hidden = true;
  $('[data-error-list]').replaceChildren();
  for (const message of document.querySelectorAll('.app-upload-form .govuk-error-message, #mapping-error')) {
    message.hidden = true;
    message.textContent = '';
  }
  for (const group of document.querySelectorAll('.govuk-form-group--error')) {
    group.classList.remove('govuk-form-group--error');
  }
  for (const input of document.querySelectorAll('.govuk-select--error, .govuk-file-upload--error')) {
    input.classList.remove('govuk-select--error', 'govuk-file-upload--error');
  }
}

/** Show problems [{id (of the field), message}] in the summary and next to their fields. */
function showErrors(problems) {
  clearErrors();
  $('[data-error-list]').replaceChildren(
    ...problems.map((p) => el('li', {}, el('a', {href: `#${p.id}`, text: p.message}))),
  );
  for (const p of problems) {
    const field = document.getElementById(p.id);
    const message = document.getElementById(p.messageId || `${p.id}-error`);
    if (message) {
      message.hidden = false;
      message.replaceChildren(el('span', {class: 'govuk-visually-hidden', text: 'Error: '}), p.message);
    }
    if (field && (form.contains(field) || field.classList.contains('app-mapping-select'))) {
      field.closest('.govuk-form-group')?.classList.add('govuk-form-group--error');
      field.classList.add(field.tagName === 'SELECT' ? 'govuk-select--error' : 'govuk-file-upload--error');
    }
  }
  const summary = $('[data-error-summary]');
  summary.hidden = false;
  summary.focus();
}


function fillLayers(layers, chosen) {
  const select = $('#layer');
  const keep = chosen ?? select.value;
  select.replaceChildren(
    el('option', {value: '', text: 'Chosen by the service'}),
    ...layers.map((name) => el('option', {value: name, text: name})),
  );
  select.value = layers.includes(keep) ? keep : '';
  $('[data-layer-hint]').textContent = layers.length > 1
    ? `This file has ${layers.length} layers: ${layers.join(', ')}. Choose one and preview again to read another.`
    : 'The only one, or the one that fits the kind. A file’s layers are listed here once it has been read.';
}

/** An API error (or a job that ended rejected or failed) as problems next to the fields concerned. */
function problemsOf(detail, sentSpec, layers = []) {
  if (layers.length) {
    fillLayers(layers);
    return [{id: 'layer', message: `${detail}. Choose the layer and preview again.`}];
  }
  if (/mapping/i.test(detail) && sentSpec && document.querySelector('.app-mapping-select')) {
    return [{id: document.querySelector('.app-mapping-select').id, messageId: 'mapping-error', message: detail}];
  }
  if (/mapping/i.test(detail)) {
    return [{id: 'mapping-file', message: detail}];
  }
  return [{id: 'file', message: detail}];
}

function apiProblem(error, sentSpec = false) {
  if (!(error instanceof ApiError)) {
    console.error(error);
    showErrors([{id: 'file', message: `This page failed (${error.message}); reload it and try again`}]);
    return;
  }
  const detail = error.problem?.detail || error.message;
  if (error.status === 401 || error.status === 403) {
    showErrors([{id: 'signin-key', messageId: 'none', message: `The service refused: ${detail}`}]);
  } else if (error.status === 429) {
    showErrors([{id: 'file', message: `${detail} Wait for your other uploads to finish, then try again.`}]);
  } else {
    showErrors(problemsOf(detail, sentSpec, error.problem?.candidates || []));
  }
}

/* ---- the form ------------------------------------------------------------------------------ */

function chosenBorough() {
  const who = caller();
  return who?.role === 'borough' ? who.borough_code : $('#borough').value;
}

/** Whether the next preview should send the mapping shown on the page (same file and kind as the preview). */
function usesShownMapping() {
  const record = shownRecord();
  const kind = $('#kind').value;
  return Boolean(record?.mapping && state.previewFile && state.previewFile === fileInput.files[0] &&
    (!kind || kind === record.mapping.kind) && !state.preferMappingFile);
}

function checkForm() {
  const problems = [];
  if (!fileInput.files.length) {
    problems.push({id: 'file', message: 'Choose the file to upload'});
  }
  if (!chosenBorough()) {
    problems.push({id: 'borough', message: 'Choose the borough the assets belong to'});
  }
  if (mappingInput.files.length && mappingInput.files[0].size > 2 ** 20) {
    problems.push({id: 'mapping-file', message: 'The mapping file is larger than 1 MB: a mapping names columns and values'});
  }
  if (usesShownMapping()) {
    for (const p of mappingProblems()) {
      problems.push({id: p.id, messageId: 'mapping-error',
        message: `Columns ${p.columns.join(' and ')} both go to ${p.field}: choose one of them for it`});
    }
  }
  return problems;
}

function buildForm() {
  const body = new FormData();
  body.append('file', fileInput.files[0]);
  body.append('borough', chosenBorough());
  for (const name of ['kind', 'layer']) {
    if ($(`#${name}`).value) {
      body.append(name, $(`#${name}`).value);
    }
  }
  body.append('mode', form.querySelector('[name=mode]:checked').value);
  body.append('skip_invalid', String($('#skip-invalid').checked));
  body.append('dry_run', 'true');
  let sentSpec = false;
  if (usesShownMapping()) {
    const spec = new Blob([JSON.stringify(mappingSpec(), null, 2)], {type: 'application/json'});
    body.append('mapping', spec, 'mapping.json');
    sentSpec = true;
  } else if (mappingInput.files.length) {
    body.append('mapping', mappingInput.files[0]);
  }
  return {body, sentSpec};
}

function setBusy(busy) {
  state.busy = busy;
  for (const button of document.querySelectorAll('[data-preview-button], [data-rerun], [data-apply]')) {
    button.disabled = busy;
    button.setAttribute('aria-disabled', String(busy));
  }
}

async function runPreview() {
  if (state.busy) {
    return;
  }
  const problems = checkForm();
  if (problems.length) {
    showErrors(problems);
    return;
  }
  clearErrors();
  $('[data-result]').hidden = true;
  const file = fileInput.files[0];
  const {body, sentSpec} = buildForm();
  setBusy(true);
  try {
    progress('Sending the file.', 0, `0 of ${number(Math.round(file.size / 1024))} KB sent.`);
    const created = await sendForm(body);
    const record = await follow(created.id);
    await finished(record, file, sentSpec);
  } catch (error) {
    progress('Stopped.', 0, '');
    apiProblem(error, sentSpec);
  } finally {
    setBusy(false);
    loadHistory();
  }
}

/* ---- after a job ----------------------------------------------------------------------------- */

/** The upload's rows for the map (any format and CRS, as the service read them), or why not. */
async function fileRows(record) {
  try {
    const rows = await api(`/uploads/${record.id}/rows.geojson?limit=${MAP_LIMIT}`, {headers: {Accept: 'application/geo+json'}});
    return {rows, note: ''};
  } catch (error) {
    return {rows: null, note: `the rows could not be drawn: ${error.message}`};
  }
}

async function boroughOutline(code) {
  try {
    return await api(`/collections/boroughs/items/${encodeURIComponent(code)}`, {headers: {Accept: 'application/geo+json'}});
  } catch (e) {
    return null; // the outline is context only
  }
}

/** Show how a job ended: the preview (or result), or why the file was refused. */
async function finished(record, file, sentSpec = false) {
  if (record.state !== 'previewed' && record.state !== 'applied') {
    progress(`The upload was ${record.state}.`, 0, '');
    const candidates = record.report?.rejected?.candidates || [];
    const message = record.message || `the upload was ${record.state}`;
    if (candidates.length) {
      fillLayers(candidates);
      showErrors([{id: 'layer', message: `${message}. Choose the layer and preview again.`}]);
    } else {
      showErrors(problemsOf(message, sentSpec));
    }
    return;
  }
  const errors = await api(`/uploads/${record.id}/errors.geojson`, {headers: {Accept: 'application/geo+json'}});
  state.previewFile = file;
  state.preferMappingFile = false;
  showPreview(record, errors.features || []);
  const layers = record.report?.source?.layers || [];
  fillLayers(layers.length > 1 ? layers : [], record.report?.source?.layer);
  renderApply(record);
  progress(record.state === 'applied' ? 'Applied.' : 'Preview ready.', 1,
    `${number(record.counts?.rows)} rows read; ${number(record.counts?.invalid)} with errors.`);
  if (record.state === 'applied') {
    showResult(record);
  } else {
    $('[data-preview-heading]').focus();
  }
  await drawRows(record);
}

/** Draw ``record``'s rows on the map, unless another upload is shown by the time they come. */
async function drawRows(record) {
  const [rows, outline] = await Promise.all([fileRows(record), boroughOutline(record.borough_code)]);
  if (shownRecord()?.id === record.id) {
    drawMap(rows.rows, outline, rows.note);
  }
}

/* ---- apply ------------------------------------------------------------------------------------ */

function whyNot(record) {
  const who = caller();
  const c = record.counts || {};
  const reasons = [];
  if (!who || !(who.role === 'admin' || (who.role === 'borough' && who.borough_code === record.borough_code))) {
    reasons.push(`Only ${boroughName(record.borough_code)}’s own keys and admins may apply it; you are signed in as ${describe(who)}.`);
  }
  if (record.state !== 'previewed') {
    reasons.push(`It is ${record.state}: only a previewed dry run can be applied.`);
  }
  if (record.file_deleted_at) {
    reasons.push(`Its file was deleted on ${when(record.file_deleted_at)} (received files are kept for a while only): upload it again.`);
  }
  if (c.invalid && !record.skip_invalid) {
    reasons.push(`${number(c.invalid)} row${c.invalid === 1 ? ' has' : 's have'} errors, so the service would refuse it. Fix them in the file and preview it again, or tick “Apply the valid rows even when some rows have errors” and re-run the preview.`);
  }
  if (mappingEdited()) {
    reasons.push('You changed where columns go: re-run the preview with that mapping before applying.');
  }
  return reasons;
}

function renderApply(record) {
  const area = $('[data-apply-area]');
  if (record.state === 'applied') {
    area.replaceChildren(el('p', {class: 'govuk-body', text: `Applied on ${when(record.applied_at)} by ${record.applied_by || record.created_by}.`}));
    return;
  }
  const reasons = whyNot(record);
  const c = record.counts || {};
  if (reasons.length) {
    const skip = c.invalid && !record.skip_invalid && state.previewFile
      ? el('button', {type: 'button', class: 'govuk-button govuk-button--secondary', 'data-rerun-skip': true,
        text: 'Re-run the preview, leaving out the rows with errors',
        onclick: () => { $('#skip-invalid').checked = true; runPreview(); }})
      : null;
    area.replaceChildren(
      el('div', {class: 'govuk-inset-text app-why-not', 'data-why-not': true},
        el('p', {class: 'govuk-body', text: 'It cannot be applied yet:'}),
        el('ul', {class: 'govuk-list govuk-list--bullet'}, reasons.map((r) => el('li', {text: r})))),
      skip);
    return;
  }
  const warning = c.retired
    ? el('div', {class: 'govuk-warning-text'},
      el('span', {class: 'govuk-warning-text__icon', 'aria-hidden': 'true', text: '!'}),
      el('strong', {class: 'govuk-warning-text__text'}, el('span', {class: 'govuk-visually-hidden', text: 'Warning'}),
        `Replace mode: ${number(c.retired)} stored asset${c.retired === 1 ? '' : 's'} not in the file will be retired.`))
    : null;
  const nothing = !c.new && !c.changed && !c.retired
    ? el('p', {class: 'govuk-body', text: 'Nothing would change: applying records the file as a no-change submission.'})
    : null;
  area.replaceChildren(...[warning, nothing].filter(Boolean), el('button', {
    type: 'button', class: 'govuk-button', 'data-apply': true, onclick: () => applyUpload(record),
    text: `Apply to ${boroughName(record.borough_code)}’s assets: ${number(c.new)} new, ${number(c.changed)} changed, ${number(c.retired)} retired`,
  }));
}

function showResult(record) {
  const c = record.counts || {};
  $('[data-result-heading]').textContent =
    `Upload ${record.id} applied: ${number(c.new)} new, ${number(c.changed)} changed, ${number(c.unchanged)} unchanged and ${number(c.retired)} retired assets in ${boroughName(record.borough_code)}.`;
  $('[data-result-text]').textContent = [
    `${kindLabel(record.kind)} from ${record.file_name}, written as load ${record.load_id} by ${record.applied_by || record.created_by} on ${when(record.applied_at)}.`,
    c.invalid ? `${number(c.invalid)} rows with errors were left out.` : '',
  ].filter(Boolean).join(' ');
  const banner = $('[data-result]');
  banner.hidden = false;
  banner.focus();
}

async function applyUpload(record) {
  if (state.busy) {
    return;
  }
  clearErrors();
  setBusy(true);
  try {
    await api(`/uploads/${record.id}/apply`, {method: 'POST'});
    const done = await follow(record.id, true);
    if (done.state === 'applied') {
      progress('Applied.', 1, `${number(done.counts?.rows)} rows read.`);
      showPreview(done, (await api(`/uploads/${done.id}/errors.geojson`)).features || []);
      renderApply(done);
      showResult(done);
      await drawRows(done);
    } else {
      progress(`The upload was ${done.state}.`, 0, '');
      showErrors([{id: 'file', message: done.message || `the upload was ${done.state}`}]);
    }
  } catch (error) {
    apiProblem(error);
  } finally {
    setBusy(false);
    loadHistory();
  }
}

const loadHistory = () => listUploads(openUpload);

async function openUpload(id) {
  clearErrors();
  $('[data-result]').hidden = true;
  try {
    const record = await api(`/uploads/${id}`);
    const same = shownRecord()?.id === id ? state.previewFile : null;
    await finished(record, same);
  } catch (error) {
    apiProblem(error);
  }
}

/* ---- wiring ------------------------------------------------------------------------------- */

function fileChosen() {
  const file = fileInput.files[0];
  $('[data-drop-text]').textContent = file
    ? `Chosen: ${file.name} (${number(Math.ceil(file.size / 1024))} KB). Or drop another file in this box.`
    : 'Or drop the file anywhere in this box.';
  if (file !== state.previewFile) {
    fillLayers([]);
  }
}

function wire() {
  const zone = $('[data-drop-zone]');
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('app-drop-zone--over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('app-drop-zone--over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('app-drop-zone--over');
    const files = event.dataTransfer?.files;
    if (files?.length === 1) {
      fileInput.files = files;
      fileInput.dispatchEvent(new Event('change', {bubbles: true}));
    } else {
      showErrors([{id: 'file', message: 'Drop one file at a time'}]);
    }
  });
  fileInput.addEventListener('change', fileChosen);
  mappingInput.addEventListener('change', () => { state.preferMappingFile = mappingInput.files.length > 0; });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    runPreview();
  });
  $('[data-rerun]').addEventListener('click', () => {
    if (!fileInput.files.length || fileInput.files[0] !== state.previewFile) {
      showErrors([{id: 'file', message: 'Choose the file again to re-run its preview (this page keeps only the file chosen in this tab)'}]);
      return;
    }
    runPreview();
  });
  $('[data-download-mapping]').addEventListener('click', () => {
    const record = shownRecord();
    const name = `mapping-${record.file_name.replace(/\.[^.]*$/, '')}.json`;
    save(new Blob([`${JSON.stringify(mappingSpec(), null, 2)}\n`], {type: 'application/json'}), name);
  });
  $('[data-mapping-rows]').addEventListener('change', () => renderApply(shownRecord()));
  for (const button of document.querySelectorAll('[data-download]')) {
    button.addEventListener('click', () => {
      const record = shownRecord();
      const name = button.dataset.download;
      download(`/uploads/${record.id}/${name}`, `upload-${record.id}-${name}`).catch((error) => showErrors([
        {id: 'errors-heading', messageId: 'none', message: `${name} could not be downloaded: ${error.message}`}]));
    });
  }
}

function signedIn(who) {
  const may = Boolean(who && (who.role === 'admin' || who.role === 'borough'));
  $('[data-needs-key]').hidden = may;
  $('[data-with-key]').hidden = !may;
  $('[data-needs-key-text]').textContent = who
    ? `You are signed in as ${describe(who)}. Operator keys may not upload or apply asset files: that needs a borough key (for that borough’s own assets) or an admin key.`
    : 'Uploading needs a borough key (for that borough’s own assets) or an admin key. Sign in with your API key above.';
  hidePreview();
  clearErrors();
  $('[data-result]').hidden = true;
  $('[data-progress-box]').hidden = true;
  state.previewFile = null;
  const fixed = who?.role === 'borough';
  $('#borough').hidden = fixed;
  $('[data-borough-hint]').hidden = fixed;
  $('[data-borough-label]').hidden = fixed;
  const label = $('[data-borough-fixed]');
  label.hidden = !fixed;
  label.replaceChildren(...(fixed
    ? [el('span', {class: 'govuk-label govuk-label--s', text: 'Borough'}), `${boroughName(who.borough_code)}: your key’s borough.`]
    : []));
  if (may) {
    loadHistory();
  }
}

wire();
await ready;
onCaller(signedIn);
