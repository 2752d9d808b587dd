// k8s/tools/lib/manifests.js - shared by the node tools in k8s/tools:
// find the modules that k8s/tools/install put into build/tools, and read
// multi-document YAML (files or standard input) into objects.
"use strict";

const fs = require("fs");
const path = require("path");

const top = path.resolve(__dirname, "../../..");
const tools = process.env.TOOLS || path.join(top, "build", "tools");
const modules = path.join(tools, "node_modules");

function need(name) {
  const dir = path.join(modules, name);
  if (!fs.existsSync(path.join(dir, "package.json"))) {
    process.stderr.write(`${name} is missing in ${modules}: run k8s/tools/install\n`);
    process.exit(2);
  }
  return dir;
}

const yaml = require(need("js-yaml"));

// load(files) - every non-empty document of the files ("-" or none: stdin),
// each as {doc, source} where source is "file#index".
function load(files) {
  const out = [];
  const list = files.length ? files : ["-"];
  for (const f of list) {
    const text = fs.readFileSync(f === "-" ? 0 : f, "utf8");
    let i = 0;
    for (const doc of yaml.loadAll(text)) {
      i += 1;
      if (doc === null || doc === undefined) continue;
      out.push({ doc, source: `${f === "-" ? "stdin" : f}#${i}` });
    }
  }
  return out;
}

function describe(doc) {
  const name = (doc.metadata && doc.metadata.name) || "?";
  return `${doc.kind || "?"}/${name}`;
}

// podSpecs(doc) - [path, podSpec, podMeta] of every pod template in an object.
function podSpecs(doc) {
  const s = doc.spec || {};
  switch (doc.kind) {
    case "Pod":
      return [["spec", s, doc.metadata || {}]];
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "ReplicationController":
    case "Job":
      return [["spec.template.spec", (s.template || {}).spec || {}, (s.template || {}).metadata || {}]];
    case "CronJob": {
      const t = ((s.jobTemplate || {}).spec || {}).template || {};
      return [["spec.jobTemplate.spec.template.spec", t.spec || {}, t.metadata || {}]];
    }
    case "PodTemplate":
      return [["template.spec", (doc.template || {}).spec || {}, (doc.template || {}).metadata || {}]];
    default:
      return [];
  }
}

module.exports = { top, tools, modules, need, yaml, load, describe, podSpecs };
