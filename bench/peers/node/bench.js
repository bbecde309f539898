// readyd-bench's json-rules-engine peer.
//
// Usage: node bench.js RULES.json FACTS.json RUNS
//
// RULES.json: the shared rule set in json-rules-engine's format (each rule's `name` is its index).
// FACTS.json: one object per entity, its runtime facts named by readyd's property paths.
// One engine holds every rule and runs once per entity with `allowUndefinedFacts` (as Backstage
// Tech Insights runs it). After one warm-up pass (the JIT), RUNS timed passes. Prints one JSON
// object: the engine's version, node's, the time of each pass in ms, the evaluations per pass and
// the pass/fail matrix of the last pass (one string per entity, '1' pass, '0' fail per rule).
'use strict';

const fs = require('fs');
const path = require('path');
const { Engine } = require('json-rules-engine');

function load(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function makeEngine(rules) {
  const engine = new Engine([], { allowUndefinedFacts: true });
  for (const rule of rules) {
    engine.addRule(rule);
  }
  return engine;
}

async function pass(engine, ruleCount, facts) {
  const matrix = new Array(facts.length);
  for (let i = 0; i < facts.length; i++) {
    const { results, failureResults } = await engine.run(facts[i]);
    const row = new Array(ruleCount).fill('?');
    for (const r of results) row[Number(r.name)] = '1';
    for (const r of failureResults) row[Number(r.name)] = '0';
    matrix[i] = row.join('');
  }
  return matrix;
}

async function main() {
  const [rulesPath, factsPath, runsArg] = process.argv.slice(2);
  if (!rulesPath || !factsPath) {
    throw new Error('usage: node bench.js RULES.json FACTS.json RUNS');
  }
  const rules = load(rulesPath);
  const facts = load(factsPath);
  const runs = Math.max(1, Number(runsArg || 3));
  const engine = makeEngine(rules);
  await pass(engine, rules.length, facts);
  const runsMs = [];
  let matrix = [];
  for (let k = 0; k < runs; k++) {
    const started = process.hrtime.bigint();
    matrix = await pass(engine, rules.length, facts);
    runsMs.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  const pkg = load(path.join(__dirname, 'node_modules', 'json-rules-engine', 'package.json'));
  process.stdout.write(JSON.stringify({
    engine: 'json-rules-engine',
    version: pkg.version,
    node: process.version,
    runs_ms: runsMs,
    evaluations: facts.length * rules.length,
    matrix,
  }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
