// SPDX-License-Identifier: MIT
// The whole public API of aioloop.
#pragma once

#include <aioloop/backend.h>
#include <aioloop/bottom_half.h>
#include <aioloop/clock.h>
#include <aioloop/context.h>
#include <aioloop/error.h>
#include <aioloop/event_notifier.h>
#include <aioloop/fd_handler.h>
#include <aioloop/io_thread.h>
#include <aioloop/stats.h>
#include <aioloop/timer.h>
