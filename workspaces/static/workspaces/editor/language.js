// NXML as a CodeMirror language: XML with completion from the NXML schema, and the JavaScript of
// each <Handler> parsed (and highlighted) as JavaScript.
import {
  LanguageSupport, javascriptLanguage, parseMixed, xml, xmlLanguage
} from '../vendor/codemirror/codemirror.bundle.js';

const CDATA_OPEN = '<![CDATA['.length;
const CDATA_CLOSE = ']]>'.length;

function insideHandler(node, input) {
  const element = node.node.parent;
  if (!element || element.name !== 'Element') return false;
  const open = element.getChild('OpenTag');
  const name = open && open.getChild('TagName');
  return Boolean(name) && input.read(name.from, name.to) === 'Handler';
}

const handlerScripts = parseMixed((node, input) => {
  if ((node.name !== 'Text' && node.name !== 'Cdata') || !insideHandler(node, input)) return null;
  if (node.name === 'Text') return { parser: javascriptLanguage.parser };
  const from = node.from + CDATA_OPEN;
  const to = Math.max(from, node.to - CDATA_CLOSE);
  return { parser: javascriptLanguage.parser, overlay: [{ from, to }] };
});

export function nxml(schema) {
  const support = xml({ elements: (schema && schema.elements) || [] });
  return new LanguageSupport(xmlLanguage.configure({ wrap: handlerScripts }), support.support);
}
