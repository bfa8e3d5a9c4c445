// Module hooks that let Node load cypress-mailpit's dist/ as Cypress's bundler would: its
// index.js is ES module syntax in a package without "type": "module", and it imports
// "./src/MailpitCommands" without the ".js" a bundler adds.
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (specifier.startsWith(".") && !/\.[cm]?js$/.test(specifier)) {
      return nextResolve(`${specifier}.js`, context);
    }
    throw error;
  }
}

export async function load(url, context, nextLoad) {
  if (url.includes("/node_modules/cypress-mailpit/dist/")) {
    return nextLoad(url, { ...context, format: "module" });
  }
  return nextLoad(url, context);
}
