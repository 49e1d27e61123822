// The app shell's small behaviours; every page works without them.
// - Tables marked `sortable` sort by a column when its header button is pressed (numbers as
//   numbers, times by their instant), and say so with aria-sort.
// - The organization switcher submits when another organization is chosen.
'use strict';

function cellKey(cell) {
  const time = cell.querySelector('time[datetime]');
  if (time) return { n: Date.parse(time.getAttribute('datetime')) };
  const text = cell.textContent.trim();
  const n = Number(text.replace(/[,\s%]/g, ''));
  return text !== '' && Number.isFinite(n) ? { n } : { s: text.toLowerCase() };
}

function compare(a, b) {
  if (a.n !== undefined && b.n !== undefined) return a.n - b.n;
  if (a.n !== undefined) return -1;
  if (b.n !== undefined) return 1;
  return a.s.localeCompare(b.s);
}

function makeSortable(table) {
  const headers = Array.from(table.tHead ? table.tHead.rows[0].cells : []);
  headers.forEach((th, index) => {
    if (th.textContent.trim() === '' || th.classList.contains('nosort')) return;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'sort';
    button.textContent = th.textContent.trim();
    th.textContent = '';
    th.appendChild(button);
    th.setAttribute('aria-sort', 'none');
    button.addEventListener('click', () => {
      const ascending = th.getAttribute('aria-sort') !== 'ascending';
      headers.forEach((h) => { if (h.hasAttribute('aria-sort')) h.setAttribute('aria-sort', 'none'); });
      th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort((r1, r2) => {
        const c = compare(cellKey(r1.cells[index]), cellKey(r2.cells[index]));
        return ascending ? c : -c;
      });
      rows.forEach((r) => body.appendChild(r));
    });
  });
}

document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('table.sortable').forEach(makeSortable);
  document.querySelectorAll('form.org-switch select').forEach((select) => {
    select.addEventListener('change', () => { if (select.value) select.form.requestSubmit(); });
  });
});
