// The scheduler registry: config value -> factory. One line per scheduler; a duplicate name is a bug
// and throws at load (find-my-way's constrainer asserts). Config validation calls getScheduler().
import assert from 'node:assert'
import { dh } from './dh'
import { fo } from './fo'
import { lblc } from './lblc'
import { lblcr } from './lblcr'
import { lc } from './lc'
import { mh } from './mh'
import { nq } from './nq'
import { ovf } from './ovf'
import { rr } from './rr'
import { sed } from './sed'
import { sh } from './sh'
import { twos } from './twos'
import type { SchedulerFactory } from './types'
import { wlc } from './wlc'
import { wrr } from './wrr'

const factories = new Map<string, SchedulerFactory>()

/** Adds a factory under factory.name; throws (AssertionError) if the name is taken or malformed. */
export function registerScheduler<O> (factory: SchedulerFactory<O>): void {
  assert.ok(/^[a-z][a-z0-9-]*$/.test(factory.name), `bad scheduler name ${JSON.stringify(factory.name)}`)
  assert.ok(!factories.has(factory.name), `scheduler ${factory.name} is already registered`)
  factories.set(factory.name, factory as SchedulerFactory)
}

export function getScheduler (name: string): SchedulerFactory | undefined {
  return factories.get(name)
}

/** Registered names in registration order (the order of `baton --list-schedulers`). */
export function schedulerNames (): string[] {
  return [...factories.keys()]
}

registerScheduler(rr)
registerScheduler(wrr)
registerScheduler(lc)
registerScheduler(wlc)
registerScheduler(lblc)
registerScheduler(lblcr)
registerScheduler(dh)
registerScheduler(sh)
registerScheduler(sed)
registerScheduler(nq)
registerScheduler(mh)
registerScheduler(fo)
registerScheduler(ovf)
registerScheduler(twos)
