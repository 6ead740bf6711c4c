// SPDX-License-Identifier: MIT
#include "glib_i18n.h"

#include <libintl.h>

#include <mutex>

#include "config.h"

namespace aioloop::glib::detail {

const char* translate(const char* msgid) {
  static std::once_flag bound;
  std::call_once(bound, [] {
    bindtextdomain(AIOLOOP_GETTEXT_PACKAGE, AIOLOOP_LOCALEDIR);
    bind_textdomain_codeset(AIOLOOP_GETTEXT_PACKAGE, "UTF-8");
  });
  return dgettext(AIOLOOP_GETTEXT_PACKAGE, msgid);
}

}  // namespace aioloop::glib::detail
