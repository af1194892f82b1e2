// Lets a forked child start the locks of live objects over: a lock another thread of the parent
// held at fork() stays locked in the child for good (that thread is not there), so the child's
// first use of the object would wait forever.
#pragma once

#include <pthread.h>

#include <mutex>
#include <new>
#include <set>

namespace axstream::hal {

// Makes a lock new again in a forked child, whatever state the parent's threads left it in.
// Only for the child's fork handler: no thread of the child can hold it then.
template <class Lock>
void renew_lock(Lock &lock) {
  new (&lock) Lock();
}

// The live objects of type T, each given to `Reset` in every child forked while it lives. The
// set's own mutex is held across fork() (prepare/parent/child handlers), so the child sees it
// whole and unlocked; `Reset` runs while the child is still single-threaded.
template <class T, void (*Reset)(T &)>
class ForkResetSet {
 public:
  static void add(T *item) {
    State &state = get();
    std::lock_guard lock(state.mutex);
    state.items.insert(item);
  }
  static void remove(T *item) {
    State &state = get();
    std::lock_guard lock(state.mutex);
    state.items.erase(item);
  }

 private:
  struct State {
    std::mutex mutex;
    std::set<T *> items;
  };
  // Never destroyed: objects that static destructors destroy (the device registry's) remove
  // themselves from it at exit, whatever the order.
  static State &get() {
    alignas(State) static unsigned char storage[sizeof(State)];
    static State &state = *[] {
      State *made = new (storage) State();
      ::pthread_atfork([] { get().mutex.lock(); }, [] { get().mutex.unlock(); },
                       [] {
                         for (T *item : get().items) Reset(*item);
                         get().mutex.unlock();
                       });
      return made;
    }();
    return state;
  }
};

// Mutexes a forked child makes new (add in the owner's constructor, remove in its destructor).
using ForkRenewedMutexes = ForkResetSet<std::mutex, &renew_lock<std::mutex>>;

}  // namespace axstream::hal
