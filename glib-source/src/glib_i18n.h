// SPDX-License-Identifier: MIT
// gettext for glib-source: the same "aioloop" domain as the core library.
#pragma once

namespace aioloop::glib::detail {
const char* translate(const char* msgid);
}

#define _(msgid) ::aioloop::glib::detail::translate(msgid)
