// The binding evaluator. evaluator.js stays a classic script (Node's test runner requires it
// too); imported here for its effect it publishes itself as globalThis.NexusEval.
import '../evaluator.js';

export const E = globalThis.NexusEval;
if (!E) throw new Error('NexusPanel: evaluator.js did not load');
