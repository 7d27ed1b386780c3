;;; client.el --- jsonrpc.el against n3d: nil params, progress, cancel by token  -*- lexical-binding: t; -*-
;; Run by tests/rpc/test_editors.py: emacs --batch -Q -l client.el SOCKET.
;; Prints one JSON line per step, like ../node/client.js.
(require 'jsonrpc)
(require 'json)
(defvar n3-progress nil)
(defvar n3-error nil)
(defun n3-out (step value)
  (princ (concat (json-encode (list (cons 'step step) (cons 'value value))) "\n")))
(defun n3-wait (pred)
  (let ((deadline (+ (float-time) 10)))
    (while (and (not (funcall pred)) (< (float-time) deadline))
      (accept-process-output nil 0.02))
    (unless (funcall pred) (n3-out "failure" "timed out") (kill-emacs 1))))
(let* ((path (car command-line-args-left))
       (conn (jsonrpc-process-connection
              :name "n3d"
              :process (make-network-process :name "n3d" :family 'local :service path
                                             :coding 'binary :noquery t)
              :notification-dispatcher
              (lambda (_c method params)
                (when (eq method '$/progress)
                  (push (plist-get (plist-get params :value) :kind) n3-progress))))))
  (n3-out "nil_params" (jsonrpc-request conn 'get_data nil))
  (jsonrpc-async-request conn 'progress '(:steps 1 :hold 30 :workDoneToken "emacs")
                         :success-fn (lambda (_r) (setq n3-error "succeeded"))
                         :error-fn (lambda (e) (setq n3-error (plist-get e :code))))
  (n3-wait (lambda () (member "report" n3-progress)))
  (jsonrpc-notify conn 'window/workDoneProgress/cancel '(:token "emacs"))
  (n3-wait (lambda () n3-error))
  (n3-out "cancel" n3-error)
  (n3-out "progress" (vconcat (reverse n3-progress)))
  (jsonrpc-shutdown conn))
