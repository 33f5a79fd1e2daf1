/** Installs the extra Node runtimes and the reference corpus once, before any test runs. */
import { installNode, NODE_PACKAGES, referenceCorpus } from './env.js';

export default function setup(): void {
  for (const major of Object.keys(NODE_PACKAGES)) installNode(major);
  referenceCorpus();
}
