// The subcommands of `ambit`, by name.

import type { CliContext } from '../context.js';
import { agent } from './agent.js';
import { agents, enroll, unenroll } from './agents.js';
import { query } from './query.js';
import { apply } from './apply.js';
import { ca } from './ca.js';
import { controller } from './controller.js';
import { del } from './delete.js';
import { demo } from './demo.js';
import { down } from './down.js';
import { exec, logs } from './exec.js';
import { explain } from './explain.js';
import { get } from './get.js';
import { sample } from './sample.js';
import { status } from './status.js';
import { up } from './up.js';

export type Command = (ctx: CliContext, args: string[]) => Promise<number | void>;

export const commands: Record<string, Command> = { up, down, status, demo, apply, get, delete: del, exec, logs, query, agents, enroll, unenroll, explain, ca, controller, agent, sample };
