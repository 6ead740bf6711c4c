// SPDX-License-Identifier: MIT
// A doubly linked intrusive list: O(1) unlink from anywhere, no allocation.
#pragma once

#include <cassert>

namespace aioloop::detail {

// An element type T derives from ListLink<Tag> once per list it can be on;
// the tag tells the links apart and lets static_cast recover T.
template <typename Tag>
struct ListLink {
  ListLink* prev = nullptr;
  ListLink* next = nullptr;
  bool linked() const { return prev != nullptr; }
};

// The list does not own its elements.
template <typename T, typename Tag>
class IntrusiveList {
  using Link = ListLink<Tag>;

 public:
  IntrusiveList() { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const { return head_.next == &head_; }

  void push_back(T* item) {
    Link* link = static_cast<Link*>(item);
    assert(!link->linked());
    link->prev = head_.prev;
    link->next = &head_;
    head_.prev->next = link;
    head_.prev = link;
  }

  static bool linked(const T* item) { return static_cast<const Link*>(item)->linked(); }

  static void unlink(T* item) {
    Link* link = static_cast<Link*>(item);
    if (!link->linked()) return;
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = nullptr;
  }

  T* front() const { return empty() ? nullptr : static_cast<T*>(head_.next); }

  T* pop_front() {
    T* item = front();
    if (item) unlink(item);
    return item;
  }

  // Calls fn(T*) for each element; fn may unlink the element it is given,
  // but no other.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (Link* link = head_.next; link != &head_;) {
      Link* next = link->next;
      fn(static_cast<T*>(link));
      link = next;
    }
  }

 private:
  Link head_;
};

}  // namespace aioloop::detail
