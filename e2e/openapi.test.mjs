// The OpenAPI document at /api/openapi.json, checked with swagger-parser (the validator most
// OpenAPI tooling builds on): valid OpenAPI 3.1, every reference resolved, and every operation it
// lists is served (an unauthenticated call is refused or rejected, never 404 or 405).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import SwaggerParser from '@apidevtools/swagger-parser';

const BASE = process.env.LEADGEN_BASE_URL;

test('the OpenAPI document is valid and every operation in it is served', async () => {
  const res = await fetch(`${BASE}/api/openapi.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /application\/json/);
  const doc = await res.json();
  assert.match(doc.openapi, /^3\.1\./);
  await SwaggerParser.validate(structuredClone(doc));

  const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => [method, path]));
  for (const [method, path] of [
    ['get', '/api/v1/leads'], ['post', '/api/v1/leads'], ['patch', '/api/v1/leads/{id}'],
    ['get', '/api/v1/leads/export'], ['post', '/api/v1/imports'], ['post', '/api/v1/leads/{id}/merge'],
    ['put', '/api/v1/scoring'], ['post', '/auth/v1/token'], ['post', '/api/v1/api-keys/{id}/rotate'],
  ]) {
    assert.ok(operations.some(([m, p]) => m === method && p === path), `${method} ${path} documented`);
  }
  assert.ok(operations.length >= 60, `${operations.length} operations`);
  // Request bodies name their schema, and the public auth endpoints say they need no credentials.
  const create = doc.paths['/api/v1/leads'].post;
  assert.equal(create.requestBody.content['application/json'].schema.$ref, '#/components/schemas/LeadInput');
  assert.deepEqual(doc.paths['/auth/v1/token'].post.security, [{}]);

  const id = '0193a1b2-0000-7000-8000-000000000000';
  for (const [method, path] of operations) {
    const url = BASE + path.replace(/\{[^}]+\}/g, id);
    const hasBody = !['get', 'delete', 'head'].includes(method);
    const r = await fetch(url, {
      method: method.toUpperCase(),
      headers: hasBody ? { 'content-type': 'application/json', origin: BASE } : { origin: BASE },
      body: hasBody ? '{}' : undefined,
      redirect: 'manual',
    });
    assert.ok(![404, 405].includes(r.status), `${method.toUpperCase()} ${path} answered ${r.status}`);
  }
});
