/* /app/wayleaves: the KPIs (GET /wayleaves/kpis) per borough and per operator.
 *
 * Each group is a bar chart in plain SVG built with DOM methods (a bar per borough or operator:
 * its wayleaves, the overdue part hatched, each bar labelled with its name and values) and the
 * same numbers, with the days to sign, in a table. The chart is hidden from screen readers, which
 * read the table.
 */
import { el, plural, svg } from './wayleaves-panel.js';

const WIDTH = 540;
const LABEL_WIDTH = 180;
const VALUE_WIDTH = 120;
const ROW = 30;
const BAR = 20;

function share(value) {
  return value === null || value === undefined ? '–' : `${Math.round(value * 100)}%`;
}

function days(value) {
  return value === null || value === undefined ? '–' : value.toLocaleString('en-GB', {maximumFractionDigits: 1});
}

function short(text, max = 24) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The bar chart of `groups` ([{name, total, overdue}]). */
function chart(scope, groups) {
  const most = Math.max(1, ...groups.map((g) => g.total));
  const scale = (WIDTH - LABEL_WIDTH - VALUE_WIDTH) / most;
  const height = Math.max(1, groups.length) * ROW + 4;
  const hatch = `app-wl-hatch-${scope}`;
  const root = svg('svg', {class: 'app-wl-chart-svg', viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height,
    'aria-hidden': 'true', focusable: 'false', 'data-chart': scope});
  root.append(svg('defs', {}, svg('pattern', {id: hatch, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)'},
    svg('rect', {width: 6, height: 6, fill: '#d4351c'}), svg('line', {x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#fff', 'stroke-width': 2}))));
  groups.forEach((g, i) => {
    const y = i * ROW + 4;
    const onTime = (g.total - g.overdue) * scale;
    const late = g.overdue * scale;
    const row = svg('g', {class: 'app-wl-bar', 'data-name': g.name, 'data-total': g.total, 'data-overdue': g.overdue});
    row.append(
      svg('text', {class: 'app-wl-bar-name', x: LABEL_WIDTH - 8, y: y + BAR - 5, 'text-anchor': 'end'}, short(g.name)),
      svg('rect', {class: 'app-wl-bar-on-time', x: LABEL_WIDTH, y, width: onTime.toFixed(1), height: BAR, fill: '#1d70b8'}),
      svg('rect', {class: 'app-wl-bar-overdue', x: (LABEL_WIDTH + onTime).toFixed(1), y, width: late.toFixed(1), height: BAR, fill: `url(#${hatch})`}),
      svg('text', {class: 'app-wl-bar-value', x: (LABEL_WIDTH + onTime + late + 6).toFixed(1), y: y + BAR - 5},
        g.overdue ? `${g.total} (${g.overdue} overdue)` : String(g.total)));
    root.append(row);
  });
  return root;
}

function legend() {
  const swatch = (cls) => svg('svg', {class: `app-wl-swatch ${cls}`, viewBox: '0 0 16 16', width: 16, height: 16, 'aria-hidden': 'true', focusable: 'false'},
    svg('rect', {width: 16, height: 16, fill: cls.includes('overdue') ? '#d4351c' : '#1d70b8'}),
    ...(cls.includes('overdue') ? [svg('path', {d: 'M0 16 16 0M-4 4 4-4M12 20 20 12', stroke: '#fff', 'stroke-width': 2})] : []));
  return el('div', {class: 'govuk-body-s app-wl-legend', 'aria-hidden': 'true'},
    el('span', {class: 'app-wl-legend-item'}, swatch('on-time'), 'On time'),
    el('span', {class: 'app-wl-legend-item'}, swatch('overdue'), 'Overdue (hatched)'),
    el('span', {class: 'app-wl-legend-item'}, 'After each bar: all wayleaves (overdue)'));
}

function figuresTable(scope, heading, groups) {
  const head = [heading, 'Wayleaves', 'Overdue', 'Signed', 'Median days to sign', '90th percentile days', 'Signed within 30 days'];
  return el('table', {class: 'govuk-table app-wl-kpi-table', 'data-kpi-table': scope},
    el('caption', {class: 'govuk-table__caption govuk-table__caption--s'}, `The figures by ${scope}`),
    el('thead', {class: 'govuk-table__head'}, el('tr', {class: 'govuk-table__row'},
      head.map((h, i) => el('th', {scope: 'col', class: `govuk-table__header${i ? ' govuk-table__header--numeric' : ''}`}, h)))),
    el('tbody', {class: 'govuk-table__body'}, groups.map((g) => el('tr', {class: 'govuk-table__row'},
      el('th', {scope: 'row', class: 'govuk-table__header'}, g.name),
      [g.total, g.overdue, g.signed, days(g.median_days_to_sign), days(g.p90_days_to_sign), share(g.signed_within_share)]
        .map((v) => el('td', {class: 'govuk-table__cell govuk-table__cell--numeric'}, String(v)))))));
}

function figure(scope, heading, groups) {
  const sorted = [...groups].sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
  const body = sorted.length
    ? [legend(), chart(scope, sorted), figuresTable(scope, heading, sorted)]
    : [el('p', {class: 'govuk-body'}, 'No wayleaves to count.')];
  return el('figure', {class: 'app-wl-chart'},
    el('figcaption', {}, el('h3', {class: 'govuk-heading-s'}, `Wayleaves by ${scope}`)), ...body);
}

/** One sentence of the overall KPIs. */
export function overallText(kpis) {
  const o = kpis.overall;
  const n = kpis.signed_within_days;
  const parts = [`${plural(o.total, 'wayleave')}, ${o.overdue.toLocaleString('en-GB')} overdue`];
  if (o.signed) {
    parts.push(`${o.signed.toLocaleString('en-GB')} signed after a request: median ${days(o.median_days_to_sign)} days from request to signature, 90th percentile ${days(o.p90_days_to_sign)} days`);
  } else {
    parts.push('none signed after a request yet');
  }
  if (o.signed_within_share !== null) {
    parts.push(`${share(o.signed_within_share)} of the requests whose ${n}-day outcome is known were signed within ${n} days`);
  }
  return `Overall: ${parts.join('; ')}.`;
}

/** Draw the KPIs into the page's `[data-kpi]` containers; `boroughName` names a GSS code. */
export function drawKpis(kpis, boroughName) {
  document.querySelector('[data-kpi-overall]').textContent = overallText(kpis);
  const boroughs = kpis.by_borough.map((g) => ({...g, name: boroughName(g.borough_code)}));
  const operators = kpis.by_operator.map((g) => ({...g, name: g.operator}));
  document.querySelector('[data-kpi="borough"]').replaceChildren(figure('borough', 'Borough', boroughs));
  document.querySelector('[data-kpi="operator"]').replaceChildren(figure('operator', 'Operator', operators));
}
