(function(){var s=[].slice.call(document.querySelectorAll('main > section'));
function cur(){var y=window.scrollY+70,i=0;s.forEach(function(e,k){if(e.offsetTop<=y)i=k;});
return i;}
document.addEventListener('keydown',function(ev){if(ev.altKey||ev.ctrlKey||ev.metaKey)return;
var t=ev.target&&ev.target.tagName;if(t==='INPUT'||t==='TEXTAREA')return;var d=0;
if(ev.key==='j'||ev.key==='ArrowRight')d=1;else if(ev.key==='k'||ev.key==='ArrowLeft')d=-1;
if(!d)return;var n=Math.min(s.length-1,Math.max(0,cur()+d));ev.preventDefault();
s.forEach(function(e){e.classList.remove('current');});s[n].classList.add('current');
s[n].scrollIntoView({block:'start'});});})();
