// SPDX-License-Identifier: MIT
// gettext for the library's user-visible messages (domain "aioloop").
#pragma once

namespace aioloop::detail {

// Translates msgid in the "aioloop" domain, binding the domain on first use
// to $AIOLOOP_LOCALEDIR if set, else to the installed locale directory. Any
// thread.
const char* translate(const char* msgid);

}  // namespace aioloop::detail

// xgettext extracts the arguments of _() and N_() (see po/meson.build).
#define _(msgid) ::aioloop::detail::translate(msgid)
#define N_(msgid) msgid
