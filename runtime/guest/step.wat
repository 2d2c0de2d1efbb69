;; One host call per glue request instead of six.
;;
;; Instantiated next to each QuickJS guest instance, in the same store, with the guest's
;; exports as its imports. `step` turns the request bytes into a JS string, calls a glue
;; entry point, and leaves the answer's UTF-8 text in the guest's result buffer. While
;; the glue answers "[3]" (waiting for promise jobs) it runs the job queue and polls; after
;; a finished answer it runs the jobs the handler left behind, so they execute against a
;; closed execution instead of inside the next one. A suspended answer ("[2,...") leaves
;; the queue alone.
;;
;; The low byte of the result is 0 when the answer is in the result buffer, 1 when the
;; entry point threw, 2 when the answer could not be read as a string, 3 when the request
;; string could not be created; the bits above it hold the size of linear memory in 64 KiB
;; pages at the end of the call.
(module
  (import "guest" "memory" (memory 0))
  (import "guest" "new_string" (func $new_string (param i32 i32) (result i32)))
  (import "guest" "call_function" (func $call_function (param i32 i32 i32 i32 i32) (result i32)))
  (import "guest" "free_value" (func $free_value (param i32)))
  (import "guest" "get_string" (func $get_string (param i32) (result i32)))
  (import "guest" "execute_pending_jobs" (func $execute_pending_jobs (result i32)))
  (import "guest" "qjs_last_ptr" (func $last_ptr (result i32)))

  ;; Runs queued jobs until none is left; returns how many batches ran any.
  (func $drain (result i32)
    (local $count i32)
    (local $ran i32)
    (loop $more
      (local.set $count (call $execute_pending_jobs))
      (if (i32.gt_s (local.get $count) (i32.const 0))
        (then (local.set $ran (i32.add (local.get $ran) (i32.const 1)))))
      (br_if $more (i32.ge_s (local.get $count) (i32.const 100000))))
    (local.get $ran))

  (func $with_size (param $status i32) (result i32)
    (i32.or (i32.shl (memory.size) (i32.const 8)) (local.get $status)))

  ;; poll: the glue's poll function; undefined: the `this` value; argv, out: 4-byte slots
  ;; (these four are the same for every call of an instance); entry: the glue function to
  ;; call; ptr/len: the request bytes, or len < 0 to call it without an argument.
  (func (export "step")
    (param $poll i32) (param $undefined i32) (param $argv i32) (param $out i32)
    (param $entry i32) (param $ptr i32) (param $len i32)
    (result i32)
    (local $text i32)
    (local $argc i32)
    (local $status i32)
    (local $answer i32)
    (local $kind i32)
    (if (i32.ge_s (local.get $len) (i32.const 0))
      (then
        (local.set $text (call $new_string (local.get $ptr) (local.get $len)))
        (if (i32.eqz (local.get $text)) (then (return (call $with_size (i32.const 3)))))
        (i32.store (local.get $argv) (local.get $text))
        (local.set $argc (i32.const 1))))
    (loop $again
      (local.set $status
        (call $call_function (local.get $entry) (local.get $undefined) (local.get $argv) (local.get $argc)
          (local.get $out)))
      (if (local.get $text)
        (then
          (call $free_value (local.get $text))
          (local.set $text (i32.const 0))))
      (if (local.get $status) (then (return (call $with_size (i32.const 1)))))
      (local.set $answer (i32.load (local.get $out)))
      (if (call $get_string (local.get $answer))
        (then
          (call $free_value (local.get $answer))
          (return (call $with_size (i32.const 2)))))
      ;; The answer's kind is its second character: [0 done, [1 failed, [2 suspended, [3 waiting.
      (local.set $kind (i32.load8_u offset=1 (call $last_ptr)))
      (if (i32.eq (local.get $kind) (i32.const 51))
        (then
          (call $free_value (local.get $answer))
          (drop (call $drain))
          (local.set $entry (local.get $poll))
          (local.set $argc (i32.const 0))
          (br $again)))
      (if (i32.ne (local.get $kind) (i32.const 50))
        (then
          ;; Jobs may reuse the result buffer: read the answer again after they ran.
          (if (call $drain)
            (then
              (if (call $get_string (local.get $answer))
                (then
                  (call $free_value (local.get $answer))
                  (return (call $with_size (i32.const 2))))))))))
    (call $free_value (local.get $answer))
    (call $with_size (i32.const 0))))
