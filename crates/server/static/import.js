// The import wizard (/leads/import): upload, review the mapping, start, follow the progress.
// Everything shown from the file goes through textContent, never through HTML: a CSV is
// attacker-controlled text.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const show = (id, on) => { $(id).hidden = !on; };
  const error = (msg) => {
    $('import-error').textContent = msg || '';
    show('import-error', Boolean(msg));
  };
  const cell = (tag, text) => {
    const el = document.createElement(tag);
    el.textContent = text == null ? '' : String(text);
    return el;
  };
  // The API answers errors as {"error": {"message": …}}.
  const failure = async (res) => {
    try {
      const body = await res.json();
      return (body.error && body.error.message) || `HTTP ${res.status}`;
    } catch {
      return `HTTP ${res.status}`;
    }
  };

  let job = null;

  $('import-upload').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error('');
    const file = $('import-file').files[0];
    if (!file) return;
    const button = ev.submitter;
    if (button) button.disabled = true;
    try {
      const res = await fetch(`/api/v1/imports?name=${encodeURIComponent(file.name)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/csv' },
        body: file,
      });
      if (res.status !== 201) {
        error(await failure(res));
        return;
      }
      job = await res.json();
      review(job);
    } catch (e) {
      error(`The upload failed: ${e.message}`);
    } finally {
      if (button) button.disabled = false;
    }
  });

  // The file read again in another encoding: the mapping and the preview follow.
  $('import-encoding').addEventListener('change', async (ev) => {
    error('');
    const res = await fetch(`/api/v1/imports/${job.id}/encoding`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ encoding: ev.target.value }),
    });
    if (!res.ok) {
      error(await failure(res));
      ev.target.value = job.encoding;
      return;
    }
    job = await res.json();
    review(job);
  });

  function review(j) {
    const enc = $('import-encoding');
    enc.replaceChildren(...(j.encodings || [j.encoding]).map(
      (e) => new Option(e === j.encoding ? `${e} (in use)` : e, e, false, e === j.encoding)));
    $('import-summary').textContent =
      `${j.rows} rows in ${j.dialect} format` +
      (j.rejected_rows ? `; ${j.rejected_rows} will be reported and left out` : '');
    const issues = $('import-issues');
    const issue = (i) => `line ${i.line}${i.column ? `, ${i.column}` : ''}: ${i.reason}`;
    $('import-issues').replaceChildren(...(j.header_issues || []).map((i) => cell('li', issue(i))));
    const headers = $('import-headers');
    const mapping = $('import-mapping');
    headers.replaceChildren();
    mapping.replaceChildren();
    j.columns.forEach((col, i) => {
      headers.append(cell('th', col.header));
      const select = document.createElement('select');
      select.name = `column_${i}`;
      select.setAttribute('aria-label', `field for column ${col.header}`);
      select.append(new Option('(skip this column)', ''));
      for (const f of j.fields) select.append(new Option(f, f, false, f === col.field));
      const th = document.createElement('th');
      th.append(select);
      mapping.append(th);
    });
    // The first rows as they would be imported with the automatic mapping.
    const body = $('import-preview').tBodies[0];
    body.replaceChildren(...(j.preview || []).map((row) => {
      const tr = document.createElement('tr');
      const lead = Object.entries(row.record || {})
        .filter(([, v]) => v !== null && v !== '' && !(Array.isArray(v) && v.length === 0) && v !== false)
        .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`)
        .join('; ');
      const td = cell('td', row.record ? lead : `left out: ${(row.issues || []).map(issue).join('; ')}`);
      td.colSpan = Math.max(1, j.columns.length - 1);
      tr.append(cell('td', `line ${row.line}`), td);
      if (row.issues && row.issues.length) tr.title = row.issues.map(issue).join('\n');
      if (!row.record) tr.className = 'rejected';
      return tr;
    }));
    show('import-review', true);
  }

  $('import-start').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error('');
    const mapping = Array.from($('import-mapping').querySelectorAll('select'))
      .map((s) => s.value || null);
    const res = await fetch(`/api/v1/imports/${job.id}/start`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mode: $('import-mode').value, mapping }),
    });
    if (!res.ok) {
      error(await failure(res));
      return;
    }
    show('import-review', false);
    show('import-upload', false);
    show('import-progress', true);
    follow(await res.json());
  });

  function follow(j) {
    $('import-bar').value = j.percent || 0;
    const parts = [`${j.status}: ${j.percent}%`, `${j.rows_done} rows`];
    if (j.rows_per_sec) parts.push(`${j.rows_per_sec} rows/s`);
    if (j.eta_secs != null && j.status === 'running') parts.push(`about ${j.eta_secs} s left`);
    parts.push(`${j.created} created, ${j.updated} updated, ${j.duplicates} duplicates, ${j.rejected} rejected`);
    if (j.error) parts.push(j.error);
    $('import-status').textContent = parts.join(' · ');
    if (['done', 'failed', 'cancelled'].includes(j.status)) {
      $('import-report-link').href = `/api/v1/imports/${j.id}/issues`;
      show('import-report', true);
      return;
    }
    setTimeout(async () => {
      const res = await fetch(`/api/v1/imports/${j.id}`);
      if (res.ok) follow(await res.json());
      else error(await failure(res));
    }, 1000);
  }
})();
