// `baton schema`: a JSON Schema of baton.yaml for editors (yaml-language-server, VS Code's YAML extension),
// derived from the zod schema (schema.ts) so that the two never drift. The schema describes what a person
// writes (zod's `io: 'input'`): addresses, patterns and hosts are strings, defaults are shown. A few values
// schema.ts leaves to checks.ts (the scheduler and the key, parsed by their owners) or reshapes before
// checking (`persistent: true`) are described here by hand. The schema is a help while typing; `baton
// check` remains the judge (rules between values, RE2 patterns, addresses).
import { z } from 'zod'
import { schedulerNames } from '../schedulers/registry'
import { configSchema } from './schema'

type Json = Record<string, unknown>

const KEY_KINDS = 'path | host | host+path | header:NAME | cookie:NAME | client-ip | client-ip/NN | capture:N | capture:NAME'

/** The schema as a JSON value (draft-07, which every YAML editor plugin reads). */
export function configJsonSchema (): Json {
  const schema = z.toJSONSchema(configSchema('/'), { io: 'input', target: 'draft-7', unrepresentable: 'any' }) as Json
  dropFormats(schema)
  const top = schema.properties as Record<string, Json>
  const service = ((top.services as Json).items as Json).properties as Record<string, Json>
  const names = schedulerNames()
  service.scheduler = {
    description: `the LVS scheduler: a name, or { name, ...options } (${names.join(' ')}); default wlc`,
    anyOf: [
      { type: 'string', enum: names },
      { type: 'object', properties: { name: { type: 'string', enum: names } }, required: ['name'] },
    ],
  }
  service.key = { type: 'string', description: `what locality and hash schedulers use: ${KEY_KINDS}; default path` }
  service.persistent = { description: 'ipvsadm -p: true (300 s, /32) or { timeoutS, netmask }', anyOf: [{ type: 'boolean' }, service.persistent] }
  return {
    $schema: schema.$schema,
    title: 'Baton configuration',
    description: 'baton.yaml: see docs/config.md. `baton check FILE` validates everything this schema cannot.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  }
}

/** zod writes `format: "starts_with"` beside the equivalent pattern; it is no JSON Schema format. */
function dropFormats (node: unknown): void {
  if (Array.isArray(node)) { node.forEach(dropFormats); return }
  if (node === null || typeof node !== 'object') return
  const o = node as Json
  if (o.format === 'starts_with') delete o.format
  for (const v of Object.values(o)) dropFormats(v)
}
