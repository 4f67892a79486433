/* The search box: an ARIA 1.2 combobox over GET /places (postcodes, boroughs, wards, assets, projects).
 *
 * Typing (2 characters or more) lists the places found after a short pause; Down and Up move
 * through them, Enter or a click chooses one, Escape closes the list. Choosing moves the map there
 * (framing its extent, or centring on it) and shows it in the details panel.
 */
import { ApiError, api } from '../app/app.js';
import { debounce, el } from './util.js';

const form = document.querySelector('[data-search]');
const input = form.querySelector('#map-search');
const listbox = form.querySelector('[data-search-results]');
const status = form.querySelector('[data-search-status]');
const error = form.querySelector('[data-search-error]');
const group = form.querySelector('#map-search-group');

const KIND_WORDS = {
  postcode: 'Postcode', postcode_district: 'Postcode district', borough: 'Borough', ward: 'Ward',
  asset: 'Asset', project: 'Pipeline project',
};

let results = [];
let active = -1;
let asked = 0;
let chooseHandler = () => {};

function setError(message) {
  error.hidden = !message;
  error.textContent = message ? `Error: ${message}` : '';
  group.classList.toggle('govuk-form-group--error', Boolean(message));
  input.classList.toggle('govuk-input--error', Boolean(message));
}

function close() {
  listbox.hidden = true;
  input.setAttribute('aria-expanded', 'false');
  input.removeAttribute('aria-activedescendant');
  active = -1;
}

function highlight(index) {
  active = index;
  [...listbox.children].forEach((option, n) => option.setAttribute('aria-selected', String(n === index)));
  if (index >= 0 && listbox.children[index]) {
    input.setAttribute('aria-activedescendant', listbox.children[index].id);
    listbox.children[index].scrollIntoView({block: 'nearest'});
  } else {
    input.removeAttribute('aria-activedescendant');
  }
}

function render(query, places) {
  results = places;
  listbox.replaceChildren(...places.map((place, n) => {
    const option = el('li', {
      class: 'app-combobox__option', id: `map-search-option-${n}`, role: 'option', 'aria-selected': 'false',
      dataset: {kind: place.kind, id: place.id},
    }, el('span', {class: 'app-combobox__label', text: place.label}),
    el('span', {class: 'app-combobox__detail', text: `${KIND_WORDS[place.kind] || place.kind}: ${place.detail}`}));
    option.addEventListener('mousedown', (event) => event.preventDefault()); // keep the focus in the box
    option.addEventListener('click', () => choose(n));
    return option;
  }));
  const found = places.length;
  status.textContent = found
    ? `${found} ${found === 1 ? 'place' : 'places'} found for “${query}”. Use the down arrow to choose one.`
    : `No place matches “${query}”. Try a postcode (NW1 2DB), a borough or ward, an asset id or a project title.`;
  listbox.hidden = !found;
  input.setAttribute('aria-expanded', String(Boolean(found)));
  highlight(-1);
}

async function search(query) {
  const ask = ++asked;
  setError('');
  try {
    const answer = await api(`/places?q=${encodeURIComponent(query)}&limit=8`);
    if (ask === asked) {
      render(answer.query, answer.places);
    }
  } catch (failure) {
    if (ask !== asked) {
      return;
    }
    close();
    status.textContent = '';
    setError(failure instanceof ApiError && failure.status === 400
      ? failure.message.replace(/^q: /, '').replace(/^query\.q: /, '')
      : `the search failed (${failure.message}); try again`);
  }
}

const searchSoon = debounce((query) => search(query), 250);

function choose(index) {
  const place = results[index];
  if (!place) {
    return;
  }
  close();
  input.value = place.label;
  status.textContent = `Showing ${place.label} on the map.`;
  chooseHandler(place);
}

input.addEventListener('input', () => {
  const query = input.value.trim();
  if (query.length < 2) {
    asked += 1;
    close();
    status.textContent = '';
    setError('');
    return;
  }
  searchSoon(query);
});

input.addEventListener('keydown', (event) => {
  const open = !listbox.hidden && results.length;
  if (event.key === 'ArrowDown' && open) {
    event.preventDefault();
    highlight((active + 1) % results.length);
  } else if (event.key === 'ArrowUp' && open) {
    event.preventDefault();
    highlight(active <= 0 ? results.length - 1 : active - 1);
  } else if (event.key === 'Enter' && open && active >= 0) {
    event.preventDefault();
    choose(active);
  } else if (event.key === 'Escape' && open) {
    event.preventDefault();
    close();
  }
});

input.addEventListener('blur', () => setTimeout(close, 150));

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const query = input.value.trim();
  if (query.length < 2) {
    setError('enter at least 2 characters: a postcode, a place, an asset or a project');
    input.focus();
    return;
  }
  search(query);
});

/** Call `handler(place)` when a place is chosen. */
export function onChoose(handler) {
  chooseHandler = handler;
}
