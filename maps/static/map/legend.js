/* The legend: only the layers that are on, as they are drawn at the current zoom. */
import { config, el, number, specs, subtypeLabel, swatch } from './util.js';
import { state } from './state.js';
import { CLUSTER_COLOR, modeAt } from './layers.js';

const box = document.querySelector('[data-legend]');

function entry(mark, text, extra) {
  return el('li', {class: 'app-legend__item'}, mark, el('span', {text}), extra ? el('span', {class: 'app-legend__note', text: ` ${extra}`}) : null);
}

function section(heading, items, note, name) {
  return el('div', {class: 'app-legend__section', dataset: {legend: name || heading}},
    el('h3', {class: 'govuk-heading-s app-legend__heading', text: heading}),
    items.length ? el('ul', {class: 'govuk-list app-legend__list'}, ...items) : null,
    note ? el('p', {class: 'govuk-body-s app-legend__note', text: note}) : null);
}

function range(cuts, n, format) {
  if (!cuts.length) {
    return 'any';
  }
  if (n === 0) {
    return `up to ${format(cuts[0])}`;
  }
  if (n >= cuts.length) {
    return `over ${format(cuts[cuts.length - 1])}`;
  }
  return `${format(cuts[n - 1])} to ${format(cuts[n])}`;
}

function choroplethSection(chart) {
  const format = chart.mode === 'share' ? (v) => `${Math.round(v * 100)}%` : (v) => number(v, v < 10 ? 1 : 0);
  const classes = chart.cuts.length ? chart.cuts.length + 1 : 1;
  const items = [];
  for (let n = 0; n < classes; n += 1) {
    items.push(entry(swatch(chart.shades[Math.min(n, chart.shades.length - 1)], 'square'), range(chart.cuts, n, format)));
  }
  if (chart.mode === 'share') {
    return section('Households covered, by borough', items, 'Share of each borough’s households within the report’s gap distance of a usable asset; each label says it.', 'share');
  }
  return section('Assets per km², by borough', items,
    `Of the asset layers that are on, with the filters. Each label gives the borough’s count. Zoom in past ${config.choroplethMaxZoom} for groups, to ${config.rawZoom} for each asset.`, 'density');
}

function assetSection(spec, mode) {
  if (mode === 'boroughs') {
    return null;
  }
  const shape = spec.geometry === 'line' ? 'line' : spec.geometry === 'polygon' ? 'square' : 'dot';
  if (mode === 'clusters' && spec.geometry === 'line') {
    return section(spec.label, [entry(swatch(spec.color, 'line'), 'Duct routes, merged')], null, spec.collection);
  }
  if (mode === 'clusters') {
    return null;
  }
  const chosen = state.filters.subtypes[spec.collection] || [];
  const codes = chosen.length ? chosen : Object.keys(spec.palette);
  const seen = new Map();
  for (const code of codes) {
    const color = spec.palette[code] || spec.color;
    const mark = code === 'sub_duct' ? 'dashed' : shape;
    const key = `${color} ${mark}`;
    const label = subtypeLabel(spec.kind, code);
    seen.set(key, seen.has(key) ? {...seen.get(key), label: `${seen.get(key).label}, ${label.toLowerCase()}`} : {color, mark, label});
  }
  const items = [...seen.values()].map((s) => entry(swatch(s.color, s.mark), s.label));
  return section(spec.label, items, null, spec.collection);
}

function wayleaveSection() {
  const chosen = state.filters.wayleave;
  const items = config.vocabulary.wayleaveGroups
    .filter((g) => !chosen.length || g.statuses.some((s) => chosen.includes(s)))
    .map((g) => entry(swatch(g.color, 'outline'), g.label,
      `(${g.statuses.map((s) => config.vocabulary.wayleaveStatuses[s].toLowerCase()).join(', ')})`));
  return section('Wayleaves, by status', items, 'Click one for its status and days in it; signed in, its operator and dates.', 'wayleaves');
}

function pipelineSection() {
  const spec = specs.pipeline_projects;
  return section('Pipeline projects', [
    entry(swatch(spec.palette.exact, 'dot'), 'At its site'),
    entry(swatch(spec.palette.borough, 'dot'), 'Somewhere in its borough (site not known)'),
  ], null, 'pipeline_projects');
}

function coverageSection(report) {
  const items = [entry(swatch('#d7191c', 'square'), `Gaps: farther than ${number(report.gapThreshold)} m from a usable asset`)];
  if (report.priorities.length) {
    items.push(entry(el('span', {class: 'app-priority app-priority--legend', 'aria-hidden': 'true', text: '1'}),
      'Priorities: the candidate assets to open up first, in order'));
  }
  return section(`Coverage report ${report.id}`, items, null, 'coverage');
}

/** Draw the legend for the zoom, the layers on, the filters, the choropleth and a report. */
export function drawLegend(zoom, chart, report) {
  const mode = modeAt(zoom);
  const parts = [];
  if (state.layers.has('boroughs')) {
    if (mode === 'boroughs' && chart && chart.on) {
      parts.push(choroplethSection(chart));
    } else {
      parts.push(section('Boundaries', [entry(swatch('#4b5563', 'outline'), 'London borough')], null, 'boroughs'));
    }
  }
  if (state.layers.has('wards')) {
    parts.push(section('Wards', [entry(swatch('#374151', 'dashed'), 'Ward boundary and name')],
      zoom < config.wardMinZoom ? `Drawn from zoom ${config.wardMinZoom} (now ${zoom}). 2002–2014 wards.` : '2002–2014 wards.', 'wards'));
  }
  const clusterLayers = config.specs.filter((s) => s.clusters && state.layers.has(s.collection));
  if (mode === 'clusters' && clusterLayers.length) {
    parts.push(section('Groups of assets', [entry(swatch(CLUSTER_COLOR, 'circle'), 'Assets near each other, with their number')],
      `${clusterLayers.map((s) => s.label).join(' and ')}. Click a group, or zoom to ${config.rawZoom}, to see each one.`, 'clusters'));
  }
  for (const spec of config.specs.filter((s) => s.kind && state.layers.has(s.collection))) {
    const part = assetSection(spec, mode);
    if (part) {
      parts.push(part);
    }
  }
  if (state.layers.has('wayleaves')) {
    parts.push(wayleaveSection());
  }
  if (state.layers.has('pipeline_projects')) {
    parts.push(pipelineSection());
  }
  if (report) {
    parts.push(coverageSection(report));
  }
  if (config.plain) {
    parts.push(el('p', {class: 'govuk-body-s app-legend__note', text: 'No street map underneath: the service runs offline. Set CONNECTIVITY_MAP_TILE_URL for one.'}));
  }
  if (!parts.length) {
    parts.push(el('p', {class: 'govuk-body-s', text: 'No layer is on.'}));
  }
  box.replaceChildren(...parts);
}
