// SPDX-License-Identifier: MIT
#include "i18n.h"

#include <libintl.h>

#include <cstdlib>
#include <mutex>

#include "config.h"

namespace aioloop::detail {

namespace {

// AIOLOOP_LOCALEDIR overrides the installed catalogues, so that a build tree
// (its tests, its uninstalled programs) can use the .mo files it just
// compiled. secure_getenv: a set-user-ID program keeps the installed ones.
const char* locale_dir() {
  const char* dir = secure_getenv("AIOLOOP_LOCALEDIR");
  return dir && *dir ? dir : AIOLOOP_LOCALEDIR;
}

}  // namespace

const char* translate(const char* msgid) {
  static std::once_flag bound;
  std::call_once(bound, [] {
    bindtextdomain(AIOLOOP_GETTEXT_PACKAGE, locale_dir());
    bind_textdomain_codeset(AIOLOOP_GETTEXT_PACKAGE, "UTF-8");
  });
  return dgettext(AIOLOOP_GETTEXT_PACKAGE, msgid);
}

}  // namespace aioloop::detail
